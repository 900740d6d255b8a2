"""The warehouse load in AWS: EventBridge Scheduler runs `railpulse-archiver-load` as an ECS
task every `warehouse_load_minutes`; it signs in to Redshift Serverless through IAM
(`redshift-serverless:GetCredentials`, no stored password) and has Redshift `COPY` each new lake
object with the copy role the core creates (railpulse_archiver.load, .share, .redshift)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler

from railpulse_deploy import names
from railpulse_deploy.core.catalog import LAKE_TABLES, WAREHOUSE_PORT
from railpulse_deploy.services._base import service_image

if TYPE_CHECKING:
    from railpulse_deploy.services.archiver import ArchiverStack

__all__ = ["SCHEDULE", "add_warehouse_load"]

SCHEDULE = "railpulse-warehouse-load"


def add_warehouse_load(stack: ArchiverStack) -> ecs.FargateTaskDefinition:
    r = stack.refs
    role = iam.Role(
        stack,
        "LoadTaskRole",
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description="railpulse warehouse load: list the lake, sign in to the warehouse",
    )
    lake = stack.bucket(names.BUCKET_LAKE)
    for statement in (
        # DuckDB lists the lake's objects (the ledger says which are new); Redshift reads them.
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [p for p, _, _ in LAKE_TABLES.values()]
                                       + [f"{p}*" for p, _, _ in LAKE_TABLES.values()]}},
        ),
        iam.PolicyStatement(
            actions=["redshift-serverless:GetCredentials"],
            resources=[r.warehouse.attr_workgroup_workgroup_arn],
        ),
        iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[r.key.key_arn]),
    ):
        role.add_to_policy(statement)
    task = ecs.FargateTaskDefinition(
        stack,
        "TaskWarehouseLoad",
        family="railpulse-warehouse-load",
        cpu=512,
        memory_limit_mib=1024,
        task_role=role,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    env = stack.container_env(
        {
            "RAILPULSE_WAREHOUSE_DIALECT": "redshift",
            "RAILPULSE_REDSHIFT_HOST": r.warehouse.attr_workgroup_endpoint_address,
            "RAILPULSE_REDSHIFT_PORT": str(WAREHOUSE_PORT),
            "RAILPULSE_REDSHIFT_WORKGROUP": names.WAREHOUSE,
            "RAILPULSE_REDSHIFT_DATABASE": names.WAREHOUSE,
            "RAILPULSE_REDSHIFT_IAM_ROLE": r.warehouse_copy_role_arn,
        }
    )
    container = task.add_container(
        "app",
        # The archiver's image (the same asset as its Spot tasks, so one build), another entry.
        image=service_image("archiver", arm=False),
        entry_point=["railpulse-archiver-load"],
        environment=env,
        logging=ecs.LogDrivers.aws_logs(stream_prefix="warehouse-load", log_group=stack.log_group),
        readonly_root_filesystem=True,
        stop_timeout=Duration.seconds(30),
    )
    task.add_volume(name="tmp")
    container.add_mount_points(
        ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)
    )

    invoker = iam.Role(
        stack,
        "LoadSchedulerRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ),
        description="EventBridge Scheduler: run the railpulse warehouse load task",
    )
    invoker.add_to_policy(
        iam.PolicyStatement(
            actions=["ecs:RunTask"],
            resources=[task.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": r.cluster.cluster_arn}},
        )
    )
    invoker.add_to_policy(
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[role.role_arn, task.obtain_execution_role().role_arn],
        )
    )
    subnets = r.vpc.select_subnets(
        subnet_type=r.task_subnets.subnet_type, subnet_group_name=r.task_subnets.subnet_group_name
    )
    scheduler.CfnSchedule(
        stack,
        "WarehouseLoadSchedule",
        name=SCHEDULE,
        description="Load new lake objects into the warehouse (railpulse-archiver-load)",
        schedule_expression=f"rate({r.cfg.warehouse_load_minutes} minutes)",
        flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
        state="ENABLED",
        target=scheduler.CfnSchedule.TargetProperty(
            arn=r.cluster.cluster_arn,
            role_arn=invoker.role_arn,
            ecs_parameters=scheduler.CfnSchedule.EcsParametersProperty(
                task_definition_arn=task.task_definition_arn,
                launch_type="FARGATE",
                task_count=1,
                network_configuration=scheduler.CfnSchedule.NetworkConfigurationProperty(
                    awsvpc_configuration=scheduler.CfnSchedule.AwsVpcConfigurationProperty(
                        subnets=subnets.subnet_ids,
                        security_groups=[r.task_sg.security_group_id],
                        assign_public_ip="DISABLED",
                    )
                ),
            ),
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                maximum_retry_attempts=2, maximum_event_age_in_seconds=600
            ),
        ),
    )
    return task
