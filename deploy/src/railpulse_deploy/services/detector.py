"""Detector: KCL consumer of `telemetry` on enhanced fan-out -> SQS `alerts` and Kinesis
`events`; model snapshots in the state bucket."""

from __future__ import annotations

from aws_cdk import Environment
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.core import CoreRefs
from railpulse_deploy.services import _metrics as m
from railpulse_deploy.services import _policy as p
from railpulse_deploy.services._base import Consumer, ServiceStack
from railpulse_shared import metric_names as mn

__all__ = ["DetectorStack"]

APP = "railpulse-detector"
SNAPSHOT_PREFIX = "detector/"


class DetectorStack(ServiceStack):
    service = "detector"

    def __init__(
        self, scope: Construct, construct_id: str, refs: CoreRefs, *, env: Environment | None = None
    ) -> None:
        super().__init__(scope, construct_id, refs, env=env)
        r = self.refs
        telemetry = self.stream(names.STREAM_TELEMETRY)
        # The latency-critical consumer gets its own 2 MB/s per shard pushed over HTTP/2
        # (~70 ms) instead of sharing the shard's 5 GetRecords/s with the archiver. The KCL
        # (retrievalMode = FANOUT) finds this consumer by its name, the application name.
        consumer = kinesis.CfnStreamConsumer(
            self, "Fanout", consumer_name=APP, stream_arn=telemetry.stream_arn
        )
        self.lease_table(APP)
        self.grant(
            p.kinesis_read(telemetry),
            iam.PolicyStatement(
                actions=["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"],
                resources=[consumer.attr_consumer_arn],
            ),
            p.kinesis_write(self.stream(names.STREAM_EVENTS)),
            p.sqs_send(self.queue(names.QUEUE_ALERTS), self.queue(names.QUEUE_REJECTS)),
            # Dead letters too large for SQS keep their bytes here (railpulse_shared.rejects).
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.bucket(names.BUCKET_STATE).arn_for_objects("rejects/detector/*")],
            ),
            p.lease_table(self, APP),
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.bucket(names.BUCKET_STATE).arn_for_objects(f"{SNAPSHOT_PREFIX}*")],
            ),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket(names.BUCKET_STATE).bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{SNAPSHOT_PREFIX}*"]}},
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[r.key.key_arn],
            ),
        )
        self.add_consumer(
            Consumer(
                "detector", kcl_app=APP, stream=names.STREAM_TELEMETRY, retrieval_mode="FANOUT"
            )
        )

        self.alarm(
            "iterator-age",
            m.efo_lag(names.STREAM_TELEMETRY, APP),
            5_000,
            3,
            "The detector is more than 5 s behind telemetry: alerts reach trains late.",
            "iterator-age",
        )
        self.alarm(
            "records-dead-lettered",
            m.service_metric(self.service, mn.RECORDS_DEAD_LETTERED, names.STREAM_TELEMETRY),
            0,
            1,
            "The detector dead-lettered frames to `rejects` (a handler error, or a frame it "
            "cannot hold): those frames were not judged.",
            "consumer-dead-letters",
        )
        self.alarm(
            "snapshots-failed",
            m.service_metric(self.service, mn.SNAPSHOTS_FAILED, names.STREAM_TELEMETRY),
            0,
            2,
            "Model snapshots have failed for 10 minutes: the detector's checkpoint is held back "
            "(a restart would replay and re-warm from the last snapshot that landed).",
            "snapshot-failures",
        )
        self.alarm(
            "model-states-dropped",
            m.service_metric(self.service, mn.MODEL_STATES_DROPPED, names.STREAM_TELEMETRY),
            0,
            1,
            "A model snapshot could not hold some trains' state: after a restart those trains "
            "start their warm-up again (no peer or forest alarms until it ends).",
            "snapshot-failures",
        )
        self.error_rate_alarm(names.STREAM_TELEMETRY)
