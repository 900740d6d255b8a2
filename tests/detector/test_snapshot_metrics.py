"""The detector's failure-only metrics, really emitted (the e2e metric contract exempts them,
since a healthy run has none): a snapshot S3 refuses is `SnapshotsFailed`, and trains a snapshot
left out are `ModelStatesDropped`, both with the dimensions their alarms watch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from structlog.testing import capture_logs

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import StreamRecord
from railpulse_shared.config import CommonSettings
from railpulse_shared.contracts import AcceptedFrame, Reading
from railpulse_shared.metric_names import MODEL_STATES_DROPPED, SNAPSHOTS_FAILED
from railpulse_shared.metrics import FileSink, Metrics


def _frames(n: int) -> list[StreamRecord]:
    return [
        StreamRecord(
            data=codec.encode(AcceptedFrame(
                train="train-7", seq=seq, ts_ms=1_764_000_000_000 + seq * 1000,
                readings={"bearing_temp_2": Reading(value=40.0)},
                received_ms=1_764_000_000_000 + seq * 1000 + 50,
            )),
            sequence_number=str(1000 + seq),
            partition_key="train-7",
        )
        for seq in range(1, n + 1)
    ]


def total(docs: list[dict[str, Any]], name: str) -> float:
    """A metric's sum over EMF documents (a document holds one value or a list of them)."""
    values = [d.get(name, []) for d in docs]
    return sum(sum(v) if isinstance(v, list) else v for v in values)


async def test_a_refused_snapshot_and_dropped_states_are_counted_for_their_alarms(
    aws: CommonSettings, tmp_path: Path
) -> None:
    settings = msgspec.structs.replace(
        DetectorSettings(aws_endpoint_url=aws.aws_endpoint_url, queue_alerts="alerts-sm",
                         queue_rejects="rejects-sm", stream_events="events-sm"),
        bucket_state="no-such-state-bucket", snapshot_interval_s=0.0,
    )
    clients = AwsClients(settings)
    async with clients.create("sqs") as sqs, clients.create("kinesis") as kinesis:
        for queue in (settings.queue_alerts, settings.queue_rejects):
            await sqs.create_queue(QueueName=queue)
        await kinesis.create_stream(StreamName=settings.stream_events, ShardCount=1)
    emf = tmp_path / "detector.emf"
    metrics = Metrics("railpulse", {"service": "detector", "stream": "telemetry"},
                      FileSink(str(emf)))
    handler = DetectorHandler(settings, metrics)
    await handler.start("shardId-000000000007")
    assert handler.model is not None
    try:
        with capture_logs() as logs:
            await handler.process(_frames(3))  # the bucket does not exist: S3 refuses the put
            await handler.flush()  # the snapshot is written off the scoring path: its outcome
        async with clients.create("s3") as s3:
            await s3.create_bucket(Bucket=settings.bucket_state)
        handler.model._dropped = ["train-7"]  # what `dumps` records for a state it had to leave out
        with capture_logs() as later:
            await handler.process(_frames(4)[3:])
            await handler.flush()
        metrics.flush()
    finally:
        await handler.stop()
    assert "model_snapshot_failed" in {log["event"] for log in logs}
    assert "model_state_dropped" in {log["event"] for log in later}
    docs = [json.loads(line) for line in emf.read_text().splitlines()]
    assert total(docs, SNAPSHOTS_FAILED) >= 1
    assert total(docs, MODEL_STATES_DROPPED) == 1
    for doc in docs:
        assert (doc["service"], doc["stream"]) == ("detector", "telemetry")
