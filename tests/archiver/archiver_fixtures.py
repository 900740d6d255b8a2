"""Helpers behind the archiver test fixtures (importable by tests; conftest only wires fixtures)."""

from __future__ import annotations

import os
import uuid

import boto3

from railpulse_archiver.settings import ArchiverSettings

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}








def ensure_credentials() -> None:
    """moto accepts any credentials, but botocore and the KCL want some."""
    for key, value in _CREDENTIALS.items():
        os.environ.setdefault(key, value)


def fresh_settings(moto_endpoint: str) -> ArchiverSettings:
    """Fresh names (bucket, Glue database, queue, warehouse schema): one moto serves the session."""
    suffix = uuid.uuid4().hex[:10]
    bucket = f"lake-{suffix}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    sqs.create_queue(QueueName=f"rejects-{suffix}")
    # Where the archiver's own dead letters go for the lake (railpulse_shared.rejects).
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name="us-east-1")
    kinesis.create_stream(StreamName=f"events-{suffix}", ShardCount=1)
    return ArchiverSettings(
        stream_events=f"events-{suffix}",
        aws_endpoint_url=moto_endpoint,
        bucket_lake=bucket,
        glue_database=f"railpulse_{suffix}",
        queue_rejects=f"rejects-{suffix}",
        flush_retry_s=5.0,
        warehouse_schema=f"wh_{suffix}",
    )
