"""The fixed names the services and the stacks share (one place; the services read them
from the environment variables listed in `ENV`)."""

from __future__ import annotations

from typing import Final

from railpulse_shared.topic_rules import SENSORS_RULE, TELEMETRY_RULE

__all__ = [
    "BUCKET_LAKE",
    "BUCKET_LOGS",
    "BUCKET_STATE",
    "GLUE_DATABASE",
    "KCL_APPS",
    "METRICS_NAMESPACE",
    "QUEUE_ALERTS",
    "QUEUE_ALERTS_DLQ",
    "QUEUE_REJECTS",
    "QUEUE_REJECTS_DLQ",
    "SERVICES",
    "SERVICE_STREAMS",
    "STREAM_EVENTS",
    "STREAM_RAW",
    "STREAM_TELEMETRY",
    "TABLE_ALARMS",
    "THING_TYPE",
    "TOPIC_RULE_SENSORS",
    "TOPIC_RULE_TELEMETRY",
    "WAREHOUSE",
    "service_env",
]

STREAM_RAW: Final = "telemetry-raw"
STREAM_TELEMETRY: Final = "telemetry"
STREAM_EVENTS: Final = "events"
QUEUE_ALERTS: Final = "alerts"
QUEUE_ALERTS_DLQ: Final = "alerts-dlq"
QUEUE_REJECTS: Final = "rejects"
QUEUE_REJECTS_DLQ: Final = "rejects-dlq"
BUCKET_LAKE: Final = "railpulse-lake"
BUCKET_STATE: Final = "railpulse-state"
BUCKET_LOGS: Final = "railpulse-access-logs"
TABLE_ALARMS: Final = "railpulse-alarms"
GLUE_DATABASE: Final = "railpulse"
WAREHOUSE: Final = "railpulse"
THING_TYPE: Final = "railpulse-train"
# Rule names are the Basic Ingest prefix: trains publish to $aws/rules/<rule>/trains/<thing>/telemetry.
# The rules (names and SQL) are defined once, in railpulse_shared.topic_rules.
TOPIC_RULE_TELEMETRY: Final = TELEMETRY_RULE.name
TOPIC_RULE_SENSORS: Final = SENSORS_RULE.name
METRICS_NAMESPACE: Final = "railpulse"

SERVICES: Final = ("ingest", "detector", "notifier", "archiver")

# Service -> the streams it consumes (the `stream` dimension of its metrics); the notifier reads
# a queue and its metrics carry no stream.
SERVICE_STREAMS: Final[dict[str, tuple[str | None, ...]]] = {
    "ingest": (STREAM_RAW,),
    "detector": (STREAM_TELEMETRY,),
    "notifier": (None,),
    "archiver": (STREAM_TELEMETRY, STREAM_EVENTS),
}

# KCL application name -> the stream it consumes. The application name is also the DynamoDB
# lease table's name.
KCL_APPS: Final = {
    "railpulse-ingest": STREAM_RAW,
    "railpulse-detector": STREAM_TELEMETRY,
    "railpulse-archiver-telemetry": STREAM_TELEMETRY,
    "railpulse-archiver-events": STREAM_EVENTS,
}


def service_env(region: str, iot_data_endpoint: str, log_level: str) -> dict[str, str]:
    """The environment every service container gets (the RAILPULSE_* contract)."""
    return {
        "AWS_REGION": region,
        "RAILPULSE_STREAM_RAW": STREAM_RAW,
        "RAILPULSE_STREAM_TELEMETRY": STREAM_TELEMETRY,
        "RAILPULSE_STREAM_EVENTS": STREAM_EVENTS,
        "RAILPULSE_QUEUE_ALERTS": QUEUE_ALERTS,
        "RAILPULSE_QUEUE_REJECTS": QUEUE_REJECTS,
        "RAILPULSE_BUCKET_LAKE": BUCKET_LAKE,
        "RAILPULSE_BUCKET_STATE": BUCKET_STATE,
        "RAILPULSE_ALARM_TABLE": TABLE_ALARMS,
        "RAILPULSE_GLUE_DATABASE": GLUE_DATABASE,
        "RAILPULSE_IOT_DATA_ENDPOINT": iot_data_endpoint,
        "RAILPULSE_LOG_LEVEL": log_level,
    }
