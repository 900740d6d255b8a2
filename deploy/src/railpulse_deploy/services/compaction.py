"""Lake compaction in AWS: EventBridge Scheduler runs `railpulse-archiver-compact` as an ECS task
every hour. It rewrites partitions' small objects into generations of ~128 MB files, commits each
by one PUT of the partition's state (`_compaction/...`), points the Glue partition at the
generation and deletes what was superseded an hour before (railpulse_archiver.compaction).

The warehouse load reads the partition states too (to load generations by segment), so its task
role gets read access to `_compaction/` here, next to the task that writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler

from railpulse_deploy import names
from railpulse_deploy.core.catalog import LAKE_TABLES
from railpulse_deploy.services._base import service_image

if TYPE_CHECKING:
    from railpulse_deploy.services.archiver import ArchiverStack

__all__ = ["SCHEDULE", "add_compaction"]

SCHEDULE = "railpulse-lake-compaction"
STATES = "_compaction/"
MANIFESTS = "_archiver/"


def add_compaction(stack: ArchiverStack, load_task: ecs.FargateTaskDefinition) -> None:
    r = stack.refs
    lake = stack.bucket(names.BUCKET_LAKE)
    tables = [prefix for prefix, _, _ in LAKE_TABLES.values()]
    glue = f"arn:{stack.partition}:glue:{stack.region}:{stack.account}"
    role = iam.Role(
        stack,
        "CompactTaskRole",
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description="railpulse lake compaction: rewrite small objects, swap Glue partitions",
    )
    for statement in (
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[lake.bucket_arn],
            conditions={
                "StringLike": {
                    "s3:prefix": [f"{p}*" for p in (*tables, STATES, MANIFESTS)]
                    + [*tables, STATES, MANIFESTS]
                }
            },
        ),
        iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[lake.arn_for_objects(f"{p}*") for p in (*tables, STATES, MANIFESTS)],
        ),
        iam.PolicyStatement(
            actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[lake.arn_for_objects(f"{p}*") for p in (*tables, STATES)],
        ),
        iam.PolicyStatement(
            actions=[
                "glue:GetDatabase",
                "glue:GetTable",
                "glue:GetPartition",
                "glue:CreatePartition",
                "glue:UpdatePartition",
            ],
            resources=[f"{glue}:catalog", f"{glue}:database/{names.GLUE_DATABASE}"]
            + [f"{glue}:table/{names.GLUE_DATABASE}/{t}" for t in LAKE_TABLES],
        ),
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[r.key.key_arn],
        ),
    ):
        role.add_to_policy(statement)
    load_task.task_role.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[lake.arn_for_objects(f"{STATES}*")])
    )
    load_task.task_role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[lake.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [STATES, f"{STATES}*"]}},
        )
    )
    task = ecs.FargateTaskDefinition(
        stack,
        "TaskLakeCompaction",
        family="railpulse-lake-compaction",
        cpu=1024,
        memory_limit_mib=4096,  # a 128 MB file is built in memory, DuckDB sorts the rest
        task_role=role,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    container = task.add_container(
        "app",
        image=service_image("archiver", arm=False),
        entry_point=["railpulse-archiver-compact"],
        environment=stack.container_env({}),
        logging=ecs.LogDrivers.aws_logs(stream_prefix="lake-compaction", log_group=stack.log_group),
        readonly_root_filesystem=True,
        stop_timeout=Duration.seconds(30),
    )
    task.add_volume(name="tmp")
    container.add_mount_points(
        ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)
    )
    invoker = iam.Role(
        stack,
        "CompactSchedulerRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ),
        description="EventBridge Scheduler: run the railpulse lake compaction task",
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
        "LakeCompactionSchedule",
        name=SCHEDULE,
        description="Compact the lake's small objects (railpulse-archiver-compact)",
        schedule_expression="rate(1 hour)",
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
                maximum_retry_attempts=1, maximum_event_age_in_seconds=1800
            ),
        ),
    )
