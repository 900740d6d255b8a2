"""Encrypted data plumbing: the key, the three streams, the queues with their dead-letter
queues, the buckets and the alarm topic."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.config import DeployConfig

__all__ = ["Data", "build_data"]


@dataclass(frozen=True)
class Data:
    key: kms.Key
    streams: dict[str, kinesis.Stream]
    queues: dict[str, sqs.Queue]
    lake: s3.Bucket
    state: s3.Bucket
    access_logs: s3.Bucket
    alarm_topic: sns.Topic


def _queue_pair(
    scope: Construct, name: str, dlq_name: str, key: kms.IKey, visibility: Duration
) -> tuple[sqs.Queue, sqs.Queue]:
    dlq = sqs.Queue(
        scope,
        f"{name.title()}Dlq",
        queue_name=dlq_name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    queue = sqs.Queue(
        scope,
        f"{name.title()}Queue",
        queue_name=name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        visibility_timeout=visibility,
        retention_period=Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5),
    )
    return queue, dlq


def build_data(scope: Construct, cfg: DeployConfig) -> Data:
    key = kms.Key(
        scope,
        "Key",
        alias="alias/railpulse",
        enable_key_rotation=True,
        description="railpulse: streams, queues, tables, buckets, warehouse, alarm topic",
        removal_policy=RemovalPolicy.RETAIN,
    )
    # CloudWatch alarms publish to the encrypted topic only if the key lets them.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],
        )
    )

    shards = {
        names.STREAM_RAW: cfg.raw_shards,
        names.STREAM_TELEMETRY: cfg.telemetry_shards,
        names.STREAM_EVENTS: cfg.events_shards,
    }
    streams = {
        name: kinesis.Stream(
            scope,
            f"Stream{name.title().replace('-', '')}",
            stream_name=name,
            shard_count=count,
            stream_mode=kinesis.StreamMode.PROVISIONED,
            retention_period=Duration.hours(24),
            # aws/kinesis: encrypted at rest without a KMS call per producer and consumer data
            # key (AwsSolutions-KDS3), and consumers need no kms:Decrypt on the stream.
            encryption=kinesis.StreamEncryption.MANAGED,
        )
        for name, count in shards.items()
    }

    # The notifier's visibility timeout covers a shadow update with retries; ingest's rejects
    # are read by people and tools, rarely.
    alerts, alerts_dlq = _queue_pair(
        scope, names.QUEUE_ALERTS, names.QUEUE_ALERTS_DLQ, key, Duration.seconds(30)
    )
    rejects, rejects_dlq = _queue_pair(
        scope, names.QUEUE_REJECTS, names.QUEUE_REJECTS_DLQ, key, Duration.minutes(5)
    )
    queues = {
        names.QUEUE_ALERTS: alerts,
        names.QUEUE_ALERTS_DLQ: alerts_dlq,
        names.QUEUE_REJECTS: rejects,
        names.QUEUE_REJECTS_DLQ: rejects_dlq,
    }

    # Server access logs and VPC flow logs. S3 log delivery writes SSE-S3 only.
    access_logs = s3.Bucket(
        scope,
        "AccessLogs",
        bucket_name=names.BUCKET_LOGS,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycle_rules=[s3.LifecycleRule(id="expire", expiration=Duration.days(90))],
        removal_policy=RemovalPolicy.RETAIN,
    )
    lake = s3.Bucket(
        scope,
        "Lake",
        bucket_name=names.BUCKET_LAKE,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix="lake/",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="tiering",
                transitions=[
                    s3.Transition(
                        storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                        transition_after=Duration.days(30),
                    ),
                    s3.Transition(
                        storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                        transition_after=Duration.days(90),
                    ),
                ],
                expiration=Duration.days(cfg.lake_retention_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
            # What the IoT rules could not deliver: kept long enough to replay, then dropped.
            s3.LifecycleRule(id="iot-errors", prefix="iot-errors/", expiration=Duration.days(30)),
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    # Model snapshots: versioned, so a bad snapshot can be rolled back (see the runbooks).
    state = s3.Bucket(
        scope,
        "State",
        bucket_name=names.BUCKET_STATE,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix="state/",
        lifecycle_rules=[
            s3.LifecycleRule(
                id="old-snapshots",
                noncurrent_version_expiration=Duration.days(30),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    topic = sns.Topic(
        scope, "AlarmTopic", topic_name="railpulse-alarms", master_key=key, enforce_ssl=True
    )
    return Data(key, streams, queues, lake, state, access_logs, topic)
