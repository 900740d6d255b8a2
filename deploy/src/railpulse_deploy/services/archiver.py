"""Archiver: KCL consumers of `telemetry` and `events` -> Parquet in the lake, Glue
partitions; the warehouse load is a scheduled task of its own (warehouse_load.py). Two ECS
services (one per stream, each with its own KCL application and lease table), both on Fargate Spot: they checkpoint only after a file is
written, so an interruption re-reads at most one flush interval."""

from __future__ import annotations

from aws_cdk import Environment
from aws_cdk import aws_iam as iam
from constructs import Construct

from railpulse_deploy import names
from railpulse_deploy.core import CoreRefs
from railpulse_deploy.core.catalog import LAKE_TABLES
from railpulse_deploy.services import _metrics as m
from railpulse_deploy.services import _policy as p
from railpulse_deploy.services._base import Consumer, ServiceStack
from railpulse_deploy.services.compaction import add_compaction
from railpulse_deploy.services.warehouse_load import add_warehouse_load
from railpulse_shared import metric_names as mn

__all__ = ["ArchiverStack"]

APPS = {
    "railpulse-archiver-telemetry": names.STREAM_TELEMETRY,
    "railpulse-archiver-events": names.STREAM_EVENTS,
}


class ArchiverStack(ServiceStack):
    service = "archiver"

    def __init__(
        self, scope: Construct, construct_id: str, refs: CoreRefs, *, env: Environment | None = None
    ) -> None:
        super().__init__(scope, construct_id, refs, env=env)
        r = self.refs
        for app in APPS:
            self.lease_table(app)
        glue = f"arn:{self.partition}:glue:{self.region}:{self.account}"
        self.grant(
            p.kinesis_read(*(self.stream(s) for s in APPS.values())),
            p.lease_table(self, *APPS),
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[
                    self.bucket(names.BUCKET_LAKE).arn_for_objects(f"{prefix}*")
                    for prefix, _, _ in LAKE_TABLES.values()
                ],
            ),
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                ],
                resources=[f"{glue}:catalog", f"{glue}:database/{names.GLUE_DATABASE}"]
                + [f"{glue}:table/{names.GLUE_DATABASE}/{t}" for t in LAKE_TABLES],
            ),
            p.sqs_send(self.queue(names.QUEUE_REJECTS)),
            # Its dead letters also go on `events`, for the lake's `rejects` table.
            p.kinesis_write(self.stream(names.STREAM_EVENTS)),
            # Dead letters too large for SQS keep their bytes here (railpulse_shared.rejects).
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.bucket(names.BUCKET_STATE).arn_for_objects("rejects/archiver/*")],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[r.key.key_arn],
            ),
        )
        for app, stream in APPS.items():
            name = app.removeprefix("railpulse-")
            # The image's entry point is railpulse-archiver; the command picks the stream.
            self.add_consumer(
                Consumer(name, kcl_app=app, stream=stream, spot=True, command=["--stream", stream])
            )
            # Polling consumers: the stream's GetRecords iterator age is the archiver's (the
            # detector reads telemetry over enhanced fan-out, reported separately).
            self.alarm(
                f"iterator-age-{stream}",
                m.iterator_age(stream),
                600_000,
                3,
                f"The archiver is more than 10 min behind {stream}; past 24 h data expires unarchived.",
                "iterator-age",
            )
            self.alarm(
                f"records-dead-lettered-{stream}",
                m.service_metric(self.service, mn.RECORDS_DEAD_LETTERED, stream),
                0,
                1,
                f"The archiver dead-lettered records of {stream} to `rejects` (undecodable, "
                "unstorable, or a handler error): they are not in the lake.",
                "consumer-dead-letters",
            )
        self.alarm(
            "warehouse-set-aside",
            m.service_metric(
                self.service, mn.WAREHOUSE_OBJECTS_SET_ASIDE, mn.WAREHOUSE_STREAM, "Maximum"
            ),
            0,
            1,
            "The warehouse load set lake objects aside (table archive_setaside): their rows are "
            "in the lake but not in the warehouse.",
            "warehouse-set-aside",
        )
        for stream in APPS.values():
            self.error_rate_alarm(stream)
        # The warehouse is loaded by its own scheduled task, not by these consumers.
        load = add_warehouse_load(self)
        # Small objects are rewritten into large ones by a scheduled task of its own too.
        add_compaction(self, load)
