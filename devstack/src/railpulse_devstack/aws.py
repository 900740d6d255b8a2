"""The AWS resources of the local stack, created idempotently in moto.

Names are exported (`RESOURCES`) and written to the stack's env file; services read them there.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
from botocore.exceptions import ClientError

__all__ = [
    "ACCESS_KEY_ID",
    "ACCOUNT_ID",
    "REGION",
    "RESOURCES",
    "SECRET_ACCESS_KEY",
    "Resources",
    "client",
    "ensure_resources",
    "resource_env",
]

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
ACCOUNT_ID = "123456789012"
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True, slots=True)
class Resources:
    streams: Mapping[str, int]
    queues: Mapping[str, str]
    """queue name -> its dead-letter queue name"""
    buckets: tuple[str, ...]
    glue_database: str
    alarms_table: str


RESOURCES = Resources(
    streams={"telemetry-raw": 2, "telemetry": 2, "events": 1},
    queues={"alerts": "alerts-dlq", "rejects": "rejects-dlq"},
    buckets=("railpulse-lake", "railpulse-state"),
    glue_database="railpulse",
    alarms_table="railpulse-alarms",
)

_BOTO_CONFIG = botocore.config.Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=30
)


def client(service: str, endpoint_url: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=_BOTO_CONFIG,
    )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _ensure_streams(endpoint: str) -> None:
    kinesis = client("kinesis", endpoint)
    existing = set(kinesis.list_streams().get("StreamNames", []))
    for name, shards in RESOURCES.streams.items():
        if name in existing:
            continue
        try:
            kinesis.create_stream(StreamName=name, ShardCount=shards)
        except ClientError as err:
            if _code(err) != "ResourceInUseException":
                raise
    for name in RESOURCES.streams:
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )


def _ensure_queues(endpoint: str) -> dict[str, str]:
    sqs = client("sqs", endpoint)
    urls: dict[str, str] = {}
    for name, dlq in RESOURCES.queues.items():
        dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
        urls[name] = url
        urls[dlq] = dlq_url
    return urls


def _ensure_buckets(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in RESOURCES.buckets:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)


def _ensure_glue(endpoint: str) -> None:
    glue = client("glue", endpoint)
    try:
        glue.create_database(DatabaseInput={"Name": RESOURCES.glue_database})
    except ClientError as err:
        if _code(err) != "AlreadyExistsException":
            raise


def _ensure_alarms_table(endpoint: str) -> None:
    ddb = client("dynamodb", endpoint)
    try:
        ddb.create_table(
            TableName=RESOURCES.alarms_table,
            AttributeDefinitions=[
                {"AttributeName": "train", "AttributeType": "S"},
                {"AttributeName": "alert_key", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "train", "KeyType": "HASH"},
                {"AttributeName": "alert_key", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as err:
        if _code(err) != "ResourceInUseException":
            raise


def ensure_resources(endpoint: str, s3_endpoint: str | None = None) -> dict[str, str]:
    """Create every resource that is missing (the buckets at `s3_endpoint`, if S3 has its own);
    returns the queue URLs by queue name."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        others = [
            pool.submit(f, endpoint) for f in (_ensure_streams, _ensure_glue, _ensure_alarms_table)
        ]
        others.append(pool.submit(_ensure_buckets, s3_endpoint or endpoint))
        urls = pool.submit(_ensure_queues, endpoint).result()
        for future in others:
            future.result()
    return urls


def resource_env(queue_urls: Mapping[str, str]) -> dict[str, str]:
    """The resource names (and queue URLs) as env-file entries."""
    env = {
        "RAILPULSE_STREAM_RAW": "telemetry-raw",
        "RAILPULSE_STREAM_TELEMETRY": "telemetry",
        "RAILPULSE_STREAM_EVENTS": "events",
        "RAILPULSE_QUEUE_ALERTS": "alerts",
        "RAILPULSE_QUEUE_ALERTS_DLQ": "alerts-dlq",
        "RAILPULSE_QUEUE_REJECTS": "rejects",
        "RAILPULSE_QUEUE_REJECTS_DLQ": "rejects-dlq",
        "RAILPULSE_BUCKET_LAKE": RESOURCES.buckets[0],
        "RAILPULSE_BUCKET_STATE": RESOURCES.buckets[1],
        "RAILPULSE_GLUE_DATABASE": RESOURCES.glue_database,
        "RAILPULSE_ALARM_TABLE": RESOURCES.alarms_table,
        "AWS_ACCOUNT_ID": ACCOUNT_ID,
    }
    for name, url in queue_urls.items():
        env[f"RAILPULSE_QUEUE_{name.upper().replace('-', '_')}_URL"] = url
    return env
