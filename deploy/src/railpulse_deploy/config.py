"""Deployment settings read from CDK context (`cdk.json` or `-c key=value`), with defaults
sized for 500 trains at 1 Hz (see railpulse_deploy.cost for the sizing rules)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_logs as logs

__all__ = ["TASK_SIZES", "DeployConfig", "TaskSize", "load_config", "retention"]


@dataclass(frozen=True)
class TaskSize:
    cpu: int  # Fargate CPU units (1024 = 1 vCPU)
    memory_mib: int


@dataclass(frozen=True)
class DeployConfig:
    region: str = "us-east-1"
    # Provisioned shards per stream; KCL services run one task per open shard, capped here.
    raw_shards: int = 1
    telemetry_shards: int = 1
    events_shards: int = 1
    max_shards: int = 16
    notifier_max_tasks: int = 4
    lake_retention_days: int = 1095
    log_retention_days: int = 30
    warehouse_base_rpu: int = 4
    # How often EventBridge Scheduler runs the warehouse load (railpulse-archiver-load).
    warehouse_load_minutes: int = 15
    # The account's IoT data endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS);
    # the notifier reaches it through the iot.data VPC endpoint and a private hosted zone.
    iot_data_endpoint: str = "example-ats.iot.us-east-1.amazonaws.com"
    # Expected gap between two frames of a train before it counts as silent (tunnels,
    # depots): the ingest publishes SilentTrains against it.
    silent_train_minutes: int = 15
    log_level: str = "INFO"
    image_tag_note: str = "built from deploy/docker/Dockerfile (target <name>) by cdk deploy"


TASK_SIZES: dict[str, TaskSize] = {
    "ingest": TaskSize(512, 1024),
    "detector": TaskSize(1024, 2048),
    "notifier": TaskSize(256, 512),
    "archiver-telemetry": TaskSize(512, 1024),
    "archiver-events": TaskSize(256, 1024),
}


def load_config(scope: Construct) -> DeployConfig:
    """Context key `railpulse:<field>` overrides each default."""
    values: dict[str, Any] = {}
    defaults = DeployConfig()
    for field in fields(DeployConfig):
        raw = scope.node.try_get_context(f"railpulse:{field.name}")
        if raw is not None:
            values[field.name] = type(getattr(defaults, field.name))(raw)
    return replace(defaults, **values)


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch Logs retention for a day count (the nearest allowed value at or above it)."""
    from aws_cdk import aws_logs as logs

    allowed = {
        1: "ONE_DAY",
        3: "THREE_DAYS",
        5: "FIVE_DAYS",
        7: "ONE_WEEK",
        14: "TWO_WEEKS",
        30: "ONE_MONTH",
        60: "TWO_MONTHS",
        90: "THREE_MONTHS",
        180: "SIX_MONTHS",
        365: "ONE_YEAR",
    }
    for limit, name in sorted(allowed.items()):
        if days <= limit:
            return logs.RetentionDays[name]
    return logs.RetentionDays.ONE_YEAR
