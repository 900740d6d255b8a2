"""A valid event the lake cannot hold is dead-lettered on its own; the flush stores the rest.

The probe that found this sent a frame with `seq` >= 2**63 (Arrow's int64 refuses it, so every
flush of the shard raised) and a channel named "a\\u0000b" (Parquet took it; every warehouse load
of that object failed). Upstream contracts may refuse such input first; the archiver must not
stall whatever reaches it.
"""

from __future__ import annotations

import io
from typing import Any

import boto3
import msgspec
import pyarrow.parquet as pq
from archiver_kclfake import Checkpointer, Input, kcl_records

from railpulse_archiver.handler import ArchiverHandler
from railpulse_archiver.lake import build_storable
from railpulse_archiver.processor import ArchiverProcessor
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.tables import Located
from railpulse_shared import codec
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import AcceptedFrame, RejectedRecord, RejectReason
from railpulse_shared.errors import UnstorableError
from railpulse_shared.metrics import Metrics

START_MS = 1_780_000_000_000


class ListSink:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, line: bytes) -> None:
        self.lines.append(msgspec.json.decode(line))


def _frames(n_s: int = 60) -> list[StreamRecord]:
    return list(fleet_records(trains=1, start_ms=START_MS, duration_s=n_s, period_s=10, shards=1))


def _altered(record: StreamRecord, seq_after: StreamRecord, **changes: Any) -> StreamRecord:
    doc = msgspec.json.decode(record.data)
    for key, value in changes.items():
        if key == "channel":
            doc["readings"] = {value: next(iter(doc["readings"].values()))}
        else:
            doc[key] = value
    return StreamRecord(
        data=msgspec.json.encode(doc),
        sequence_number=str(int(seq_after.sequence_number) + 1),
        partition_key=record.partition_key,
        shard_id=record.shard_id,
        stream=record.stream,
    )


def test_build_storable_sets_aside_exactly_the_events_the_lake_cannot_hold() -> None:
    frames = [codec.decode_event(r.data) for r in _frames()]
    assert all(isinstance(f, AcceptedFrame) for f in frames)
    good = [f for f in frames if isinstance(f, AcceptedFrame)]
    huge = msgspec.structs.replace(good[1], seq=2**63)  # built, not decoded: no contract check
    nul = msgspec.structs.replace(
        good[3], readings={"a\x00b": next(iter(good[3].readings.values()))}
    )
    events = [good[0], huge, good[2], nul, *good[4:]]
    items = [(Located("telemetry", "shardId-0", str(i), 0), e) for i, e in enumerate(events)]

    objects, errors = build_storable("shardId-0", items, ("0", 0), (str(len(items) - 1), 0))

    assert sorted(errors) == [1, 3]
    assert all(isinstance(e, UnstorableError) for e in errors.values())
    assert "OverflowError" in str(errors[1]) and "NUL" in str(errors[3])
    rows = sum(o.rows for o in objects)
    assert rows == sum(len(f.readings) for i, f in enumerate(events) if i not in errors)


def test_unstorable_frames_are_dead_lettered_and_the_shard_moves_on(
    settings: ArchiverSettings,
) -> None:
    frames = _frames()
    huge = _altered(frames[1], frames[-1], seq=2**63)
    nul = _altered(frames[2], huge, channel="a\x00b")
    after = [
        msgspec.structs.replace(f, sequence_number=str(int(nul.sequence_number) + 1 + i))
        for i, f in enumerate(_frames(120)[6:])
    ]
    sink = ListSink()
    metrics = Metrics("railpulse", {"service": "archiver", "stream": "telemetry"}, sink)
    eager = msgspec.structs.replace(settings, buffer_max_age_s=0)
    processor = ArchiverProcessor(
        ArchiverHandler(eager, metrics=metrics),
        stream="telemetry",
        metrics=metrics,
        checkpoint_interval_s=0,
    )
    checkpointer = Checkpointer()
    processor.initialize(Input(shard_id=frames[0].shard_id))
    processor.process_records(
        Input(records=kcl_records([*frames, huge, nul, *after]), checkpointer=checkpointer)
    )
    processor.process_records(Input(records=[], checkpointer=checkpointer))

    # The checkpoint passed both, so the shard is not stalled.
    assert checkpointer.last == (after[-1].sequence_number, 0)

    # Both are in the rejects queue with their bytes, position and the consumer's name.
    sqs = boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=settings.queue_rejects)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    rejects = {}
    for message in got:
        reject = codec.decode_event(message["Body"].encode())
        assert isinstance(reject, RejectedRecord)
        rejects[reject.source.sequence_number] = (reject, message["MessageAttributes"])
    assert set(rejects) == {huge.sequence_number, nul.sequence_number}
    for bad in (huge, nul):
        reject, attributes = rejects[bad.sequence_number]
        assert reject.raw == bad.data and reject.source.stream == "telemetry"
        # A bounded contract refuses them before the encoder does; either way they are here.
        assert reject.reason in (RejectReason.UNSTORABLE, RejectReason.SCHEMA_VIOLATION)
        assert reject.detail.startswith("archiver: ")
        assert attributes["consumer"]["StringValue"] == "archiver"
        assert attributes["raw_kind"]["StringValue"] == "event"

    # Every other frame is in the lake.
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=settings.bucket_lake, Prefix="telemetry/")["Contents"]
    ]
    tables = [
        pq.read_table(io.BytesIO(s3.get_object(Bucket=settings.bucket_lake, Key=k)["Body"].read()))
        for k in keys
    ]
    stored = {s for t in tables for s in t.column("source_seq").to_pylist()}
    assert stored == {r.sequence_number for r in [*frames, *after]}
    if any(r[0].reason is RejectReason.UNSTORABLE for r in rejects.values()):
        counted = sum(line.get("RecordsUnstorable", 0) for line in sink.lines)
        assert counted == sum(r[0].reason is RejectReason.UNSTORABLE for r in rejects.values())
