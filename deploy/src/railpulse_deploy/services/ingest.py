"""Ingest: KCL consumer of `telemetry-raw` -> `telemetry`; rejects to SQS `rejects` (and, for the
lake, to `events`)."""

from __future__ import annotations

from aws_cdk import Environment
from aws_cdk import aws_iam as iam
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.core import CoreRefs
from railpulse_deploy.services import _metrics as m
from railpulse_deploy.services import _policy as p
from railpulse_deploy.services._base import Consumer, ServiceStack
from railpulse_shared import metric_names as mn

__all__ = ["IngestStack"]

APP = "railpulse-ingest"


class IngestStack(ServiceStack):
    service = "ingest"

    def __init__(
        self, scope: Construct, construct_id: str, refs: CoreRefs, *, env: Environment | None = None
    ) -> None:
        super().__init__(scope, construct_id, refs, env=env)
        r = self.refs
        raw, telemetry = self.stream(names.STREAM_RAW), self.stream(names.STREAM_TELEMETRY)
        self.lease_table(APP)
        self.grant(
            p.kinesis_read(raw),
            p.kinesis_write(telemetry),
            p.sqs_send(self.queue(names.QUEUE_REJECTS)),
            # Each reject also goes on `events`, for the lake's `rejects` table.
            p.kinesis_write(self.stream(names.STREAM_EVENTS)),
            # Rejects too large for SQS keep their bytes under rejects/<shard id>/ in the state
            # bucket (railpulse_shared.rejects; ingest's carry no consumer name).
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.bucket(names.BUCKET_STATE).arn_for_objects("rejects/shardId-*")],
            ),
            p.lease_table(self, APP),
            # Decrypt what it reads (stream, lease table); encrypt what it writes.
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[r.key.key_arn],
            ),
        )
        # Sole consumer of telemetry-raw, so polling (every 250 ms) stays within the shard's
        # 5 GetRecords/s without paying for enhanced fan-out.
        self.add_consumer(
            Consumer("ingest", kcl_app=APP, stream=names.STREAM_RAW),
            extra_env={"RAILPULSE_SILENT_TRAIN_AFTER_S": str(r.cfg.silent_train_minutes * 60)},
        )

        self.alarm(
            "iterator-age",
            m.iterator_age(names.STREAM_RAW),
            30_000,
            3,
            "Ingest is more than 30 s behind telemetry-raw.",
            "iterator-age",
        )
        self.alarm(
            "rejects-depth",
            m.queue_depth(names.QUEUE_REJECTS),
            0,
            1,
            "Ingest rejected frames (its dead-letter queue `rejects` is not empty).",
            "dead-letter-depth",
        )
        self.alarm(
            "rejects-dlq-depth",
            m.queue_depth(names.QUEUE_REJECTS_DLQ),
            0,
            1,
            "Messages in rejects-dlq: a consumer of `rejects` failed them 5 times.",
            "dead-letter-depth",
        )
        self.error_rate_alarm(names.STREAM_RAW)
        self.alarm(
            "silent-train",
            m.service_metric(self.service, mn.SILENT_TRAINS, names.STREAM_RAW, "Maximum"),
            0,
            3,
            f"At least one train seen in the last day has sent nothing for "
            f"{r.cfg.silent_train_minutes} min, for 15 minutes.",
            "silent-train",
        )
        self.alarm(
            "clock-skew",
            m.service_metric(self.service, mn.FRAMES_CLOCK_SKEWED, names.STREAM_RAW),
            0,
            3,
            "Devices have sent frames whose sensor time is off their IoT receipt time by more "
            "than the tolerance, for 15 minutes: their readings are misplaced in time.",
            "clock-skew",
        )
