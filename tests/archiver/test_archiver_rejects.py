"""Dead letters in the lake: every `rejected.v1` also goes on `events`, the archiver writes it into
the `rejects` table with its raw bytes, the warehouse loads it; a dead letter of a dead letter
stays on the queue (no loop); the sink returns only when both the queue and `events` have it.

Real moto (SQS, Kinesis, S3, Glue) and PostgreSQL; the archiver through its KCL adapter.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import msgspec
from archiver_lakebuild import archive

from railpulse_archiver.query import connect_lake
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.share import load_warehouse
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.warehouse import connect_warehouse
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import RejectedRecord, RejectReason, SourcePosition
from railpulse_shared.errors import TransientError
from railpulse_shared.publish import KinesisPublisher, Retry
from railpulse_shared.rejects import RawKind, Rejection, RejectSink

START_MS = 1_780_000_000_000
_EVENT_SEQ = 49_800_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def _client(settings: ArchiverSettings, name: str) -> Any:
    return boto3.client(name, endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")


def _queued(settings: ArchiverSettings) -> list[RejectedRecord]:
    """Every message on the rejects queue (left there: made visible again)."""
    sqs = _client(settings, "sqs")
    url = sqs.get_queue_url(QueueName=settings.queue_rejects)["QueueUrl"]
    found, handles = [], []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        messages = got.get("Messages", [])
        if not messages:
            break
        for m in messages:
            found.append(codec.decode_wire(m["Body"].encode(), RejectedRecord))
            handles.append(m["ReceiptHandle"])
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return found


def _on_events(settings: ArchiverSettings) -> list[StreamRecord]:
    """Every record on the (one-shard) `events` stream, as the archiver's consumer reads them."""
    kinesis = _client(settings, "kinesis")
    shard = kinesis.list_shards(StreamName=settings.stream_events)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=settings.stream_events, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [
        StreamRecord(
            data=r["Data"],
            sequence_number=r["SequenceNumber"],
            partition_key=r["PartitionKey"],
            shard_id=shard,
            stream=settings.stream_events,
        )
        for r in records
    ]


def _bad(after: StreamRecord, n: int, **changes: Any) -> StreamRecord:
    doc = msgspec.json.decode(after.data)
    if "channel" in changes:
        doc["readings"] = {changes.pop("channel"): next(iter(doc["readings"].values()))}
    doc.update(changes)
    return msgspec.structs.replace(
        after, data=msgspec.json.encode(doc), sequence_number=str(int(after.sequence_number) + n)
    )


def test_the_archivers_dead_letters_land_in_the_rejects_table_and_the_warehouse(
    settings: ArchiverSettings, postgres_dsn: str
) -> None:
    frames = list(fleet_records(trains=1, start_ms=START_MS, duration_s=60, period_s=10, shards=1))
    huge = _bad(frames[-1], 1, seq=2**63)
    nul = _bad(frames[-1], 2, channel="a\x00b")
    archive(settings, [*frames, huge, nul], "telemetry")

    # On the queue and, the same body, on `events`.
    queued = {r.source.sequence_number: r for r in _queued(settings)}
    assert set(queued) == {huge.sequence_number, nul.sequence_number}
    published = _on_events(settings)
    assert sorted(r.data for r in published) == sorted(codec.encode(r) for r in queued.values())

    # The events archiver writes them into the lake's `rejects` table, bytes intact.
    events = msgspec.structs.replace(settings, archiver_stream="events")
    archive(events, published, "events")
    con = connect_lake(f"s3://{settings.bucket_lake}", endpoint=settings.aws_endpoint_url)
    rows = con.execute(
        "SELECT record_seq, raw, raw_size, consumer, raw_kind, record_stream, reason, detail, "
        "source_stream, dt FROM rejects ORDER BY record_seq"
    ).fetchall()
    assert [r[0] for r in rows] == sorted([huge.sequence_number, nul.sequence_number])
    for seq, raw, size, consumer, kind, stream, reason, detail, source, _ in rows:
        sent = huge if seq == huge.sequence_number else nul
        assert raw == sent.data and size == len(sent.data)
        assert (consumer, kind, stream, source) == (
            "archiver",
            "event",
            "telemetry",
            settings.stream_events,
        )
        assert reason in (RejectReason.UNSTORABLE, RejectReason.SCHEMA_VIOLATION)
        assert detail.startswith("archiver: ") and "\x00" not in detail

    # The warehouse loads the table like the others (BYTEA: the same bytes).
    load_warehouse(msgspec.structs.replace(settings, warehouse_dsn=postgres_dsn))
    conn = connect_warehouse(postgres_dsn, settings.warehouse_schema)
    loaded = conn.execute("SELECT record_seq, raw FROM rejects ORDER BY record_seq").fetchall()
    assert [(s, bytes(b)) for s, b in loaded] == [(r[0], r[1]) for r in rows]


def test_a_dead_letter_of_a_dead_letter_stays_on_the_queue(settings: ArchiverSettings) -> None:
    """The loop guard: a `rejected.v1` the archiver cannot take goes to the queue only; any other
    record it cannot take is published once, and its `rejected.v1` is then stored."""
    broken_reject = b'{"kind":"rejected.v1","reason":"no such reason"}'
    garbage = b"\xff\xfe not an event \x00"
    records = [
        StreamRecord(
            data=data,
            sequence_number=str(_EVENT_SEQ + i),
            partition_key="p",
            shard_id="shardId-000000000000",
            stream=settings.stream_events,
        )
        for i, data in enumerate([broken_reject, garbage], start=1)
    ]
    events = msgspec.structs.replace(settings, archiver_stream="events")
    archive(events, records, "events")

    assert sorted(r.raw for r in _queued(settings)) == sorted([broken_reject, garbage])
    (published,) = _on_events(settings)
    wrapper = codec.decode_wire(published.data, RejectedRecord)
    assert wrapper.raw == garbage and wrapper.consumer == "archiver"

    # The archiver takes the wrapper: the garbage is in the lake, and nothing more is published.
    archive(events, [published], "events")
    con = connect_lake(f"s3://{settings.bucket_lake}", endpoint=settings.aws_endpoint_url)
    assert con.execute("SELECT raw FROM rejects").fetchall() == [(garbage,)]
    assert len(_on_events(settings)) == 1 and len(_queued(settings)) == 2


def test_the_sink_returns_when_both_have_it_and_a_retry_queues_nothing_twice(
    settings: ArchiverSettings,
) -> None:
    rejection = Rejection(
        reason=RejectReason.MALFORMED_JSON,
        detail="not JSON",
        raw=b"Invalid JSON Data",
        raw_kind=RawKind.PAYLOAD,
        source=SourcePosition("telemetry-raw", "shardId-000000000007", "123", 0),
        device="sensor-105",
        topic="iot/sensors",
        received_ms=START_MS,
    )

    async def run() -> tuple[str, list[Rejection]]:
        clients = AwsClients(settings)
        async with (
            clients.create("sqs") as sqs,
            clients.create("s3") as s3,
            clients.create("kinesis") as kinesis,
        ):
            url = (await sqs.get_queue_url(QueueName=settings.queue_rejects))["QueueUrl"]
            sink = RejectSink(
                sqs,
                s3,
                queue_url=url,
                bucket=settings.bucket_state,
                events=KinesisPublisher(kinesis, "no-such-stream", Retry(attempts=1)),
            )
            sent: list[Rejection] = []
            error = ""
            try:
                await sink.send([rejection], START_MS, sent)
            except TransientError as exc:
                error = str(exc)
            assert sent == [] and len(_queued(settings)) == 1
            sink.events = KinesisPublisher(kinesis, settings.stream_events)
            await sink.send([rejection], START_MS + 5, sent)
            return error, sent

    error, sent = asyncio.run(run())
    assert "not put on no-such-stream" in error
    assert sent == [rejection]
    (queued,) = _queued(settings)  # once, though sent twice
    (published,) = _on_events(settings)
    record = codec.decode_wire(published.data, RejectedRecord)
    assert record == queued and record.raw == b"Invalid JSON Data"
    assert (record.device, record.topic, record.received_ms) == (
        "sensor-105",
        "iot/sensors",
        START_MS,
    )
