"""What every service stack has: a task role, a log group, Fargate services built from the
service's Dockerfile, one task per shard (KCL services) and the alarms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import ArnFormat, Duration, Environment, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.config import TASK_SIZES, retention
from railpulse_deploy.core import CoreRefs
from railpulse_deploy.nag import acknowledge_service
from railpulse_deploy.services import _metrics as m

__all__ = [
    "AGENT_IMAGE",
    "DOCKERFILE",
    "EMF_AGENT_SINK",
    "KCL_SHUTDOWN_GRACE_MS",
    "REPO_ROOT",
    "STOP_TIMEOUT_S",
    "Consumer",
    "ServiceStack",
    "service_image",
]

REPO_ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = "deploy/docker/Dockerfile"
"""One Dockerfile, one build target per service (scripts/images.sh builds the same targets)."""
AGENT_IMAGE = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304"
"""The CloudWatch agent sidecar of the KCL tasks (pinned; pin by digest at release)."""
EMF_AGENT_SINK = "tcp://127.0.0.1:25888"
"""Where a KCL task's processors send their EMF: the agent sidecar (tasks share localhost).
Their stdout is the MultiLangDaemon's protocol and their stderr the daemon re-logs inside its
own lines, where CloudWatch would not find the metrics."""
STOP_TIMEOUT_S = 30
"""ECS's SIGTERM-to-SIGKILL time for a service container."""
KCL_SHUTDOWN_GRACE_MS = 20_000
"""The KCL's `shutdownGraceMillis` in AWS: within the stop timeout, with room for the JVM."""
_AGENT_CONFIG = '{"agent": {"quiet": true}, "logs": {"metrics_collected": {"emf": {}}}}'


def service_image(target: str, *, arm: bool) -> ecs.ContainerImage:
    """The image of one service: `target` of the repository's Dockerfile."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file=DOCKERFILE,
        target=target,
        platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64,
        ignore_mode=IgnoreMode.DOCKER,  # the repository's .dockerignore: sources and locks only
    )


@dataclass(frozen=True)
class Consumer:
    """One ECS service of the stack. KCL consumers name their application (= lease table)."""

    name: str  # ECS service name suffix and task size key: "ingest", "archiver-events"
    kcl_app: str | None = None
    stream: str | None = None
    spot: bool = False  # Fargate Spot is x86 only, so Spot tasks run x86
    retrieval_mode: str = "POLLING"
    command: list[str] = field(default_factory=list)


class ServiceStack(Stack):
    """Base for the four service stacks; subclasses add their grants and alarms."""

    service: str

    def __init__(
        self, scope: Construct, construct_id: str, refs: CoreRefs, *, env: Environment | None = None
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"railpulse {self.service}: Fargate service, scaling, alarms",
            env=env,
        )
        self.refs = refs
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/railpulse/{self.service}",
            retention=retention(refs.cfg.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"railpulse {self.service}: only what the service calls",
        )
        self.alarm_action = cw_actions.SnsAction(refs.alarm_topic)
        self.services: dict[str, ecs.FargateService] = {}
        acknowledge_service(self)

    # -- the core's resources, by their fixed names ----------------------------------------

    def stream(self, name: str) -> kinesis.IStream:
        found = self.node.try_find_child(f"Stream-{name}")
        if found is None:
            arn = self.format_arn(service="kinesis", resource="stream", resource_name=name)
            return kinesis.Stream.from_stream_arn(self, f"Stream-{name}", arn)
        return found  # type: ignore[return-value]

    def queue(self, name: str) -> sqs.IQueue:
        found = self.node.try_find_child(f"Queue-{name}")
        if found is None:
            return sqs.Queue.from_queue_arn(
                self, f"Queue-{name}", self.format_arn(service="sqs", resource=name)
            )
        return found  # type: ignore[return-value]

    def bucket(self, name: str) -> s3.IBucket:
        found = self.node.try_find_child(f"Bucket-{name}")
        if found is None:
            return s3.Bucket.from_bucket_name(self, f"Bucket-{name}", name)
        return found  # type: ignore[return-value]

    # -- building blocks -------------------------------------------------------------------

    def container_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        cfg = self.refs.cfg
        env = names.service_env(self.region, f"https://{cfg.iot_data_endpoint}", cfg.log_level)
        return env | (extra or {})

    def lease_table(self, app: str) -> dynamodb.TableV2:
        """The KCL lease table, created here (encrypted with the railpulse key, point-in-time
        recovery on) rather than by the KCL, which would create it with default settings.
        The KCL finds it by name (= application name) and uses it as is."""
        return dynamodb.TableV2(
            self,
            f"Leases{app.title().replace('-', '')}",
            table_name=app,
            partition_key=dynamodb.Attribute(name="leaseKey", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(self.refs.key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,  # leases are rebuilt from the stream
        )

    def grant(self, *statements: iam.PolicyStatement) -> None:
        for s in statements:
            self.task_role.add_to_policy(s)

    def add_consumer(
        self, c: Consumer, extra_env: dict[str, str] | None = None
    ) -> ecs.FargateService:
        size = TASK_SIZES[c.name]
        arm = not c.spot
        task = ecs.FargateTaskDefinition(
            self,
            f"Task{c.name.title().replace('-', '')}",
            family=f"railpulse-{c.name}",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        env = dict(extra_env or {})
        if c.kcl_app:
            # The service names its KCL application (= the lease table above) itself; the task
            # sets the retrieval, and the processors' metrics go to the agent sidecar.
            env |= {
                "RAILPULSE_KCL_RETRIEVAL_MODE": c.retrieval_mode,
                # Most of the stop timeout: on SIGTERM the record processors get this long to
                # flush and checkpoint (5 s timed out while processors were still starting).
                "RAILPULSE_KCL_SHUTDOWN_GRACE_MS": str(KCL_SHUTDOWN_GRACE_MS),
                "RAILPULSE_METRICS_SINK": EMF_AGENT_SINK,
            }
        app = task.add_container(
            "app",
            image=service_image(self.service, arm=arm),
            command=c.command or None,
            environment=self.container_env(env),
            logging=ecs.LogDrivers.aws_logs(stream_prefix=c.name, log_group=self.log_group),
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(STOP_TIMEOUT_S),  # > the KCL's shutdown grace
        )
        task.add_volume(name="tmp")
        app.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)
        )
        if c.kcl_app:
            self.add_emf_agent(task, app, c.name)
        service = ecs.FargateService(
            self,
            f"Service{c.name.title().replace('-', '')}",
            service_name=f"railpulse-{c.name}",
            cluster=self.refs.cluster,
            task_definition=task,
            desired_count=1,
            vpc_subnets=self.refs.task_subnets,
            security_groups=[self.refs.task_sg],
            assign_public_ip=False,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider="FARGATE_SPOT" if c.spot else "FARGATE", weight=1
                )
            ],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            # Start the new task before stopping the old one: a new KCL worker waits until the
            # old one hands its leases over on SIGTERM, so a deployment costs seconds of lag,
            # not a cold start (only deployments briefly run more tasks than shards).
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        self.services[c.name] = service
        if c.kcl_app and c.stream:
            self.scale_on_shards(service, c.stream)
        return service

    def add_emf_agent(
        self, task: ecs.FargateTaskDefinition, app: ecs.ContainerDefinition, prefix: str
    ) -> ecs.ContainerDefinition:
        """The CloudWatch agent as a sidecar taking EMF on tcp 127.0.0.1:25888 and writing it to
        CloudWatch Logs, where the metrics are extracted. Essential: a task whose metrics are
        lost is not observed (its alarms would see missing data), so ECS replaces it. The app
        starts once the agent has."""
        agent = task.add_container(
            "cloudwatch-agent",
            image=ecs.ContainerImage.from_registry(AGENT_IMAGE),
            environment={"CW_CONFIG_CONTENT": _AGENT_CONFIG},
            essential=True,
            memory_reservation_mib=64,
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=f"{prefix}-agent", log_group=self.log_group
            ),
        )
        app.add_container_dependencies(
            ecs.ContainerDependency(container=agent, condition=ecs.ContainerDependencyCondition.START)
        )
        # The EMF documents name no log group, so the agent writes them to its default one.
        group = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name="emf/logs/default",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.grant(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=[group, f"{group}:log-stream:*"],
            )
        )
        return agent

    def scale_on_shards(self, service: ecs.FargateService, stream: str) -> ecs.ScalableTaskCount:
        """One task per open shard of `stream`: each step sets the exact task count, so there are
        never more tasks than shards (a KCL worker without a lease would only idle)."""
        top = self.refs.cfg.max_shards
        target = service.auto_scale_task_count(min_capacity=1, max_capacity=top)
        steps = [appscaling.ScalingInterval(upper=1.5, change=1)]
        steps += [
            appscaling.ScalingInterval(lower=n - 0.5, upper=n + 0.5, change=n)
            for n in range(2, top)
        ]
        steps += [appscaling.ScalingInterval(lower=top - 0.5, change=top)]
        target.scale_on_metric(
            "OneTaskPerShard",
            metric=m.open_shards(stream),
            scaling_steps=steps,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            cooldown=Duration.minutes(1),
            evaluation_periods=1,
            datapoints_to_alarm=1,
        )
        return target

    def alarm(
        self,
        name: str,
        metric: cw.Metric | cw.MathExpression,
        threshold: float,
        periods: int,
        description: str,
        runbook: str,
        *,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            metric=metric,
            alarm_name=f"railpulse-{self.service}-{name}",
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=missing,
            alarm_description=f"{description} Runbook: docs/runbooks/{runbook}.md; dashboard: railpulse.",
        )
        alarm.add_alarm_action(self.alarm_action)
        alarm.add_ok_action(self.alarm_action)
        return alarm

    def error_rate_alarm(self, stream: str | None = None) -> cw.Alarm:
        """More than 1 % of the records of `stream` (the notifier: of its alerts) failed in each
        of three 5-minute periods."""
        what = f"{self.service}'s records of {stream}" if stream else f"{self.service}'s records"
        return self.alarm(
            f"error-rate-{stream}" if stream and len(names.SERVICE_STREAMS[self.service]) > 1
            else "error-rate",
            m.error_rate(self.service, stream),
            1.0,
            3,
            f"More than 1% of {what} failed (were dead-lettered) for 15 minutes.",
            "error-rate",
        )
