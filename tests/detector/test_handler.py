"""The detector's shard handler against moto's real SQS and Kinesis APIs."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
from structlog.testing import capture_logs

from railpulse_detector.handler import DetectorHandler, shard_phase
from railpulse_detector.settings import DetectorSettings
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import StreamRecord
from railpulse_shared.config import CommonSettings
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    DeviceKind,
    Reading,
    RejectedRecord,
    RejectReason,
)


def settings_for(aws: CommonSettings, suffix: str) -> DetectorSettings:
    return DetectorSettings(
        aws_endpoint_url=aws.aws_endpoint_url,
        queue_alerts=f"alerts-{suffix}",
        queue_rejects=f"rejects-{suffix}",
        stream_events=f"events-{suffix}",
    )


async def drain(sqs: Any, queue: str) -> list[str]:
    url = (await sqs.get_queue_url(QueueName=queue))["QueueUrl"]
    page = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [m["Body"] for m in page.get("Messages", [])]


def record(seq: int, data: bytes) -> StreamRecord:
    return StreamRecord(data=data, sequence_number=str(1000 + seq), partition_key="train-9")


def frame(seq: int, bearing: float) -> bytes:
    return codec.encode(
        AcceptedFrame(
            train="train-9",
            seq=seq,
            ts_ms=1_764_000_000_000 + seq * 1000,
            readings={"bearing_temp_2": Reading(value=bearing)},
            received_ms=1_764_000_000_000 + seq * 1000 + 50,
        )
    )


async def test_limit_anomaly_reaches_alerts_and_events_and_poison_is_rejected(
    aws: CommonSettings,
) -> None:
    settings = settings_for(aws, "h1")
    clients = AwsClients(settings)
    async with clients.create("sqs") as sqs, clients.create("kinesis") as kinesis:
        for queue in (settings.queue_alerts, settings.queue_rejects):
            await sqs.create_queue(QueueName=queue)
        await kinesis.create_stream(StreamName=settings.stream_events, ShardCount=1)
        handler = DetectorHandler(settings)
        await handler.start("shardId-000000000000")
        try:
            result = await handler.process(
                [record(1, frame(1, 40.0)), record(2, frame(2, 130.0)), record(3, b"not json")]
            )
            await handler.dead_letter(result.poison)
        finally:
            await handler.stop()

        assert [len(found) for _, found in result.succeeded] == [0, 1]
        (alert,) = [msgspec.json.decode(b, type=Anomaly) for b in await drain(sqs, settings.queue_alerts)]
        assert alert.alert_key == "bearing_temp_2" and alert.severity.name == "CRITICAL"
        assert [e.source for e in alert.evidence] == ["limit"]
        assert alert.detected_ms >= alert.received_ms > 0

        shard = (await kinesis.list_shards(StreamName=settings.stream_events))["Shards"][0]
        iterator = (await kinesis.get_shard_iterator(
            StreamName=settings.stream_events, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        ))["ShardIterator"]
        events = (await kinesis.get_records(ShardIterator=iterator))["Records"]
        on_events = [codec.decode_event(e["Data"]) for e in events]
        # The alert, and the dead letter too (for the lake's `rejects` table): the same body.
        assert [e for e in on_events if isinstance(e, Anomaly)] == [alert]

        (reject_body,) = await drain(sqs, settings.queue_rejects)
        assert [e for e in on_events if isinstance(e, RejectedRecord)] == [
            codec.decode_event(reject_body.encode())
        ]
        assert len(on_events) == 2
        reject = codec.decode_event(reject_body.encode())
        assert isinstance(reject, RejectedRecord)
        assert reject.raw == b"not json" and reject.reason is RejectReason.MALFORMED_JSON
        assert reject.detail.startswith("detector: MalformedPayloadError")
        assert reject.source.sequence_number == "1003"
        assert json.loads(reject_body)["source"]["stream"] == "telemetry"


class FlakyEmitter:
    """Fails the first emit (unit test of the handler's retry bookkeeping)."""

    def __init__(self) -> None:
        self.sent: list[list[Anomaly]] = []
        self.fail = True

    async def emit(self, anomalies: list[Anomaly]) -> None:
        if self.fail:
            self.fail = False
            from railpulse_shared.errors import TransientError

            raise TransientError("throttled")
        self.sent.append(list(anomalies))


async def test_a_retry_resends_without_deciding_twice() -> None:
    handler = DetectorHandler(DetectorSettings())
    emitter = FlakyEmitter()
    handler.emitter = emitter  # type: ignore[assignment]
    records = [record(1, frame(1, 130.0))]
    first = await handler.process(records)
    assert [f.kind.value for f in first.failed] == ["transient"]
    second = await handler.process(records)
    assert not second.failed
    # One anomaly, sent once: the rules saw the frame once (a second look would not re-raise it
    # within the re-assertion interval, so the resend proves the decision was kept).
    assert [[a.alert_key for a in sent] for sent in emitter.sent] == [["bearing_temp_2"]]


def train_frames(train: str, seqs: range) -> list[StreamRecord]:
    """Calm frames (all eight bearings) of one train, as records at sequence 1000 + seq."""
    return [
        StreamRecord(
            data=codec.encode(
                AcceptedFrame(
                    train=train,
                    seq=seq,
                    ts_ms=1_764_000_000_000 + seq * 1000,
                    readings={f"bearing_temp_{i}": Reading(value=40.0 + i) for i in range(1, 9)},
                )
            ),
            sequence_number=str(1000 + seq),
            partition_key=train,
        )
        for seq in seqs
    ]


def frames_learned(handler: DetectorHandler, train: str) -> int:
    """How many frames of `train` its model has learned from."""
    assert handler.model is not None
    kind = handler.model.kinds[DeviceKind.TRAIN]
    assert kind.fleet is not None
    return int(kind.fleet.thresholder.count[kind.index[train]])


async def provision(settings: DetectorSettings) -> None:
    """The handler's queues, events stream and state bucket, in moto."""
    clients = AwsClients(settings)
    async with clients.create("sqs") as sqs, clients.create("kinesis") as kinesis, \
            clients.create("s3") as s3:
        for queue in (settings.queue_alerts, settings.queue_rejects):
            await sqs.create_queue(QueueName=queue)
        await kinesis.create_stream(StreamName=settings.stream_events, ShardCount=1)
        await s3.create_bucket(Bucket=settings.bucket_state)


async def test_a_crash_replays_from_the_snapshot_so_every_frame_reaches_the_model_once(
    aws: CommonSettings,
) -> None:
    """The checkpoint never passes what the saved snapshot has seen: killed after frames the
    snapshot lacks, the next owner restores it, is replayed those frames and learns each once."""
    settings = msgspec.structs.replace(
        settings_for(aws, "h3"), bucket_state="state-h3", snapshot_interval_s=3600.0,
        snapshot_first_s=3600.0,
    )
    await provision(settings)
    shard = "shardId-000000000007"

    first = DetectorHandler(settings)
    await first.start(shard)
    assert first.durable_position(None) is None  # nothing saved yet: nothing to checkpoint
    await first.process(train_frames("train-7", range(1, 31)))
    await first.flush()  # a snapshot at frame 30 (what the interval does in service)
    assert first.durable_position(("1030", 0)) == ("1030", 0)
    await first.process(train_frames("train-7", range(31, 51)))
    # Frames 31-50 are processed but in no snapshot: the checkpoint stays at 30.
    assert first.durable_position(("1050", 0)) == ("1030", 0)
    await first._stack.aclose()  # kill -9: no flush, no snapshot

    second = DetectorHandler(settings)
    with capture_logs() as logs:
        await second.start(shard)
    assert "model_snapshot_restored" in {log["event"] for log in logs}
    assert frames_learned(second, "train-7") == 30
    await second.process(train_frames("train-7", range(31, 61)))  # the KCL replays from 30
    assert frames_learned(second, "train-7") == 60
    await second.process(train_frames("train-7", range(55, 61)))  # a replay the model has seen
    assert frames_learned(second, "train-7") == 60

    # A worker that lost the lease writes nothing: the shard's snapshot is the new owner's.
    second.lose()
    await second.flush()
    await second.stop()
    third = DetectorHandler(settings)
    await third.start(shard)
    try:
        assert frames_learned(third, "train-7") == 30
    finally:
        await third.flush()
        await third.stop()


async def test_the_first_snapshot_comes_soon_after_the_lease_then_one_an_interval(
    aws: CommonSettings,
) -> None:
    """The first snapshot is `snapshot_first_s` after the shard is taken, not a whole interval:
    the checkpoint starts moving, and the snapshot's copy of the models is in place, early."""
    settings = msgspec.structs.replace(
        settings_for(aws, "h5"), bucket_state="state-h5", snapshot_interval_s=3600.0
    )
    await provision(settings)
    waits = DetectorHandler(settings)  # the default: a minute after the lease
    soon = DetectorHandler(msgspec.structs.replace(settings, snapshot_first_s=0.0))
    await waits.start("shardId-000000000009")
    await soon.start("shardId-000000000010")
    try:
        await waits.process(train_frames("train-9", range(1, 11)))
        assert waits.snapshots_begun == 0  # the minute is not up
        await soon.process(train_frames("train-9", range(1, 11)))
        assert soon.snapshots_begun == 1
        await soon.flush()  # it lands (the models have not moved since: nothing more to save)
        assert soon.snapshots_begun == 1
        assert soon.durable_position(("1010", 0)) == ("1010", 0)
        await soon.process(train_frames("train-9", range(11, 21)))
        assert soon.snapshots_begun == 1  # the next one waits for the interval
        assert soon.durable_position(("1020", 0)) == ("1010", 0)
    finally:
        await waits.stop()
        await soon.stop()


def test_shards_leased_together_take_their_snapshots_apart() -> None:
    """Each shard waits its own share of `snapshot_first_s` more for its first snapshot (up to as
    much again), so shards leased together, as at a worker's start, do not copy and encode their
    models at the same moment on the same cores, then or at any interval after."""
    phases = [shard_phase(f"shardId-{n:012d}") for n in range(8)]
    assert all(0.0 <= p < 1.0 for p in phases)
    ordered = sorted(phases)
    assert min(b - a for a, b in itertools.pairwise(ordered)) > 1 / 16
    assert 0.0 <= shard_phase("not-a-kinesis-shard-id") < 1.0

    settings = msgspec.structs.replace(DetectorSettings(), snapshot_first_s=60.0)
    dues = []
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        handler = DetectorHandler(settings)
        handler.shard_id = shard
        dues.append(handler._snapshot_due())
    assert dues[0] == 60.0
    assert 60.0 + 30.0 < dues[1] < 120.0  # 0.618 of a minute later
    handler.snapshots_begun = 1  # then one an interval, each shard keeping its distance
    assert handler._snapshot_due() == settings.snapshot_interval_s


async def test_a_shard_without_new_frames_checkpoints_without_a_snapshot() -> None:
    handler = DetectorHandler(DetectorSettings())
    handler.emitter = FlakyEmitter()  # type: ignore[assignment]
    handler.emitter.fail = False  # type: ignore[attr-defined]
    await handler.process([record(1, b"not json")])  # poison only: the models did not move
    assert handler.durable_position(("1001", 0)) == ("1001", 0)


async def test_a_frame_the_snapshot_cannot_hold_is_refused_and_snapshots_go_on(
    aws: CommonSettings,
) -> None:
    """A sequence number beyond int64 never reaches the model: the contract refuses it when it is
    decoded (`Seq` is bounded), so it is dead-lettered on its own, while the snapshot (which the
    checkpoint waits for) is written and the checkpoint moves past it."""
    settings = msgspec.structs.replace(
        settings_for(aws, "h4"), bucket_state="state-h4", snapshot_interval_s=0.0
    )
    await provision(settings)
    async with AwsClients(settings).create("sqs") as sqs:
        calm = train_frames("train-8", range(1, 6))
        huge = StreamRecord(
            data=calm[0].data.replace(b'"seq":1,', b'"seq":%d,' % 2**70),
            sequence_number="1006",
            partition_key="train-8",
        )
        handler = DetectorHandler(settings)
        await handler.start("shardId-000000000008")
        try:
            with capture_logs() as logs:
                result = await handler.process([*calm, huge])
                await handler.flush()  # the snapshot the batch began (off the loop) lands
            await handler.dead_letter(result.poison)
        finally:
            await handler.stop()
        assert [f.record.sequence_number for f in result.poison] == ["1006"]
        assert len(result.succeeded) == 5
        assert "model_snapshot_saved" in {log["event"] for log in logs}
        assert handler.durable_position(("1006", 0)) == ("1006", 0)
        (body,) = await drain(sqs, settings.queue_rejects)
        reject = codec.decode_event(body.encode())
        assert isinstance(reject, RejectedRecord)
        assert reject.reason is RejectReason.SCHEMA_VIOLATION and reject.raw == huge.data
        assert (reject.source.stream, reject.source.shard_id) == ("telemetry", "shardId-000000000008")
