"""Forward, reject, recover and re-drive against real AWS APIs (moto's server, over HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import msgspec
from ingest_support import Stack, envelope, frame, make_stack, record
from test_boundary import SEED003

from railpulse_cli.commands.rejects import list_rejects, redrive
from railpulse_ingest.handler import IngestHandler
from railpulse_ingest.processor import make_processor
from railpulse_shared import codec
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import AcceptedFrame, Quality, RejectedRecord, RuleEnvelope
from railpulse_shared.metrics import FileSink, Metrics

SHARD = "shardId-000000000000"


class Checkpointer:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, int | None]] = []

    def checkpoint(self, sequence_number: str | None = None, sub: int | None = None) -> None:
        self.calls.append((sequence_number, sub))


def kcl_input(records: list[StreamRecord], checkpointer: Checkpointer) -> SimpleNamespace:
    kcl_records = [
        SimpleNamespace(
            binary_data=r.data,
            sequence_number=r.sequence_number,
            sub_sequence_number=0,
            partition_key=r.partition_key,
            timestamp_millis=0,
        )
        for r in records
    ]
    return SimpleNamespace(records=kcl_records, checkpointer=checkpointer, millis_behind_latest=0)


def run_processor(stack: Stack, records: list[StreamRecord]) -> Checkpointer:
    processor = make_processor(stack.settings, stack.clients)
    processor.checkpoint_interval_s = 0
    processor.initialize(SimpleNamespace(shard_id=SHARD, sequence_number="TRIM_HORIZON"))
    checkpointer = Checkpointer()
    processor.process_records(kcl_input(records, checkpointer))
    processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))
    return checkpointer


async def accepted(stack: Stack) -> list[AcceptedFrame]:
    data = await stack.read_stream(stack.settings.stream_telemetry)
    return [msgspec.json.decode(d, type=AcceptedFrame) for d in data]


async def rejected(stack: Stack) -> list[tuple[RejectedRecord, dict[str, str]]]:
    out = []
    for m in await stack.queue_messages():
        attrs = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
        out.append((msgspec.json.decode(m["Body"].encode(), type=RejectedRecord), attrs))
    return out


def test_seed003_cases_end_at_telemetry_or_the_rejects_queue(moto_url: str, tmp_path: Path) -> None:
    emf = tmp_path / "emf.jsonl"
    stack = asyncio.run(make_stack(moto_url, metrics_sink=f"file://{emf}"))
    principals = [f"sensor-10{i}" for i in (1, 2, 3, 4, 4, 5, 6, 7)]
    records = [
        record(envelope(p, who), i)
        for i, (p, who) in enumerate(zip(SEED003, principals, strict=True))
    ]
    checkpointer = run_processor(stack, records)
    frames = asyncio.run(accepted(stack))
    assert sorted(f.train for f in frames) == [f"sensor-10{i}" for i in range(1, 8)]
    six = next(f for f in frames if f.train == "sensor-106")
    assert six.readings["humidity"].quality is Quality.INVALID
    ((reject, attrs),) = asyncio.run(rejected(stack))
    assert reject.reason.value == "malformed_json" and reject.raw == b"Invalid JSON Data"
    assert reject.source.shard_id == SHARD and reject.source.sequence_number == "49000000004"
    assert attrs["reason"] == "malformed_json" and attrs["principal"] == "sensor-104"
    # Checkpointed only once every record was forwarded or dead-lettered: at the last one.
    assert checkpointer.calls[-1] == ("49000000007", 0)
    metrics: dict[str, float] = {}
    for line in emf.read_text().splitlines():
        doc = json.loads(line)
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = doc[m["Name"]]
            metrics[m["Name"]] = metrics.get(m["Name"], 0) + (
                sum(value) if isinstance(value, list) else value
            )
    assert metrics["RecordsIn"] == 8 and metrics["RecordsForwarded"] == 7
    assert metrics["RecordsRejected"] == 1 and metrics["Rejected.malformed_json"] == 1
    assert "BatchLatency" in metrics and "MillisBehindLatest" in metrics


def test_a_payload_too_big_for_sqs_goes_to_s3(moto_url: str) -> None:
    stack = asyncio.run(make_stack(moto_url))
    payload = b'{"device_id": "s1", "timestamp": 1700000000, "pad": "' + b"x" * 300_000 + b'"}'
    run_processor(stack, [record(envelope(payload, "s1"), 1)])
    ((reject, _),) = asyncio.run(rejected(stack))
    assert (
        reject.reason.value == "oversized" and reject.raw == b"" and reject.raw_size == len(payload)
    )
    assert reject.raw_s3_uri == f"s3://{stack.settings.bucket_state}/rejects/{SHARD}/49000000001-0"

    async def fetch() -> bytes:
        async with stack.clients.create("s3") as s3:
            key = reject.raw_s3_uri.split("/", 3)[3]  # type: ignore[union-attr]
            response = await s3.get_object(Bucket=stack.settings.bucket_state, Key=key)
            async with response["Body"] as body:
                return bytes(await body.read())

    assert asyncio.run(fetch()) == payload


async def test_failed_puts_are_transient_and_retried_without_duplicates(moto_url: str) -> None:
    stack = await make_stack(moto_url, forward_max_attempts=2, forward_backoff_s=0.01)
    missing = msgspec.structs.replace(stack.settings, stream_telemetry="does-not-exist")
    handler = IngestHandler(missing, clients=stack.clients, recover=False)
    await handler.start(SHARD)
    records = [record(envelope(codec.encode(frame("train-1", s)), "train-1"), s) for s in range(3)]
    result = await handler.process(records)
    assert len(result.transient) == 3 and not result.poison  # never checkpointed, retried later
    await handler.stop()
    handler = IngestHandler(stack.settings, clients=stack.clients, recover=False)
    await handler.start(SHARD)
    first = await handler.process(records)
    again = await handler.process(records)  # e.g. the retry of a batch that partly landed
    await handler.stop()
    assert not first.failed and not again.failed
    assert sorted(f.seq for f in await accepted(stack)) == [0, 1, 2]


async def test_a_new_owner_recovers_what_was_forwarded_before_the_failover(moto_url: str) -> None:
    stack = await make_stack(moto_url)
    async with stack.clients.create("kinesis") as kinesis:
        sequences = []
        for s in range(6):
            data = envelope(codec.encode(frame("train-5", s)), "train-5")
            response = await kinesis.put_record(
                StreamName=stack.settings.stream_raw, Data=data, PartitionKey="train-5"
            )
            sequences.append((response["SequenceNumber"], data))
    records = [
        StreamRecord(data=d, sequence_number=n, shard_id=SHARD, stream=stack.settings.stream_raw)
        for n, d in sequences
    ]
    first = IngestHandler(stack.settings, clients=stack.clients)
    await first.start(SHARD)
    await first.process(records)  # forwarded all six, then "killed" before checkpointing past 2
    second = IngestHandler(stack.settings, clients=stack.clients)
    second.checkpoint_sequence = records[2].sequence_number
    await second.start(SHARD)
    await second.process(records[2:])  # the KCL replays from the checkpoint
    await first.stop()
    await second.stop()
    assert sorted(f.seq for f in await accepted(stack)) == [0, 1, 2, 3, 4, 5]


async def test_rejects_listed_by_reason_and_redriven_after_a_fix(moto_url: str) -> None:
    stack = await make_stack(moto_url, ts_max_future_ms=0, max_receives=2)
    received = int(time.time() * 1000)
    future = received + 60_000  # a train clock a minute ahead of the receipt: out of bounds
    ahead = codec.encode(msgspec.structs.replace(frame("train-8", 1), ts_ms=future))
    records = [
        record(envelope(ahead, "train-8", received_ms=received), 1),
        record(envelope(b"{broken", "train-8"), 2),
        record(envelope(codec.encode(frame("train-9", 1)), "train-8"), 3),  # spoofing
    ]
    handler = IngestHandler(stack.settings, clients=stack.clients, recover=False)
    await handler.start(SHARD)
    await handler.dead_letter((await handler.process(records)).poison)
    await handler.stop()

    listing = await list_rejects(stack.settings)
    assert listing["total"] == 3
    assert {k: v["count"] for k, v in listing["reasons"].items()} == {
        "timestamp_out_of_bounds": 1,
        "malformed_json": 1,
        "identity_mismatch": 1,
    }
    # SQS has no peek: every listing is a receive, and after `maxReceiveCount` of them the
    # rejects move to the dead-letter queue, where they are still listed and re-driven.
    rejects, dlq = stack.settings.queue_rejects, stack.settings.queue_rejects_dlq
    assert listing["queues"] == {rejects: 3, dlq: 0}
    for _ in range(2):
        listing = await list_rejects(stack.settings)
        assert listing["total"] == 3  # listing consumed nothing
    assert listing["queues"] == {rejects: 0, dlq: 3}

    out = await redrive(stack.settings, reason="timestamp_out_of_bounds", limit=5)
    assert out == {"redriven": 1, "failed": 0, "matched": 1}
    (data,) = await stack.read_stream(stack.settings.stream_raw)
    assert codec.decode_envelope(data) == RuleEnvelope(
        topic="trains/train-8/telemetry", principal="train-8", received_ms=received, payload=ahead
    )
    remaining = await list_rejects(stack.settings)
    assert set(remaining["reasons"]) == {"malformed_json", "identity_mismatch"}
    # After the fix (a tolerance for clock skew), the re-driven record is accepted.
    fixed = msgspec.structs.replace(stack.settings, ts_max_future_ms=300_000)
    handler = IngestHandler(fixed, clients=stack.clients, recover=False)
    await handler.start(SHARD)
    result = await handler.process([record(data, 9)])
    await handler.stop()
    assert not result.failed and [f.train for f in await accepted(stack)] == ["train-8"]


async def test_a_conflict_is_dead_lettered_with_both_digests_and_survives_a_failover(
    moto_url: str, tmp_path: Path
) -> None:
    """Same (train, epoch, seq), other content: on the rejects queue as `seq_conflict`, raw bytes
    kept, counted; an identical redelivery is dropped; the same seq under a new epoch (a
    restarted counter) is forwarded. A new shard owner, which rebuilt its state from
    `telemetry`, decides the same."""
    emf = tmp_path / "emf.jsonl"
    stack = await make_stack(moto_url)
    train = "train-6"

    def payload(epoch: int, speed: float) -> bytes:
        body = msgspec.structs.replace(frame(train, 1, speed=speed), epoch=epoch)
        return codec.encode(body)

    original, changed = payload(11, 80.0), payload(11, 12.0)
    async with stack.clients.create("kinesis") as kinesis:
        response = await kinesis.put_record(
            StreamName=stack.settings.stream_raw,
            Data=envelope(original, train),
            PartitionKey=train,
        )
    first_record = StreamRecord(
        data=envelope(original, train),
        sequence_number=response["SequenceNumber"],
        shard_id=SHARD,
        stream=stack.settings.stream_raw,
    )
    metrics = Metrics("railpulse", {"service": "ingest"}, FileSink(str(emf)))
    first = IngestHandler(stack.settings, clients=stack.clients, metrics=metrics)
    await first.start(SHARD)
    assert not (await first.process([first_record])).failed
    await first.stop()

    second = IngestHandler(stack.settings, clients=stack.clients, metrics=metrics)
    second.checkpoint_sequence = first_record.sequence_number
    await second.start(SHARD)  # recovers (train, epoch, seq) and the digest from `telemetry`
    later = [
        record(envelope(original, train), 10),  # a redelivery: dropped
        record(envelope(changed, train), 11),  # a conflict: kept on the rejects queue
        record(envelope(payload(12, 12.0), train), 12),  # a new counter: forwarded
    ]
    result = await second.process(later)
    await second.dead_letter(result.poison)
    await second.stop()
    metrics.flush()

    assert [(f.epoch, f.seq) for f in await accepted(stack)] == [(11, 1), (12, 1)]
    ((reject, attrs),) = await rejected(stack)
    assert reject.reason.value == "seq_conflict" and attrs["reason"] == "seq_conflict"
    assert reject.raw == changed and reject.device == train
    kept = (await accepted(stack))[0]
    theirs = second.pipeline.express.digest.of_accepted(kept)  # digests are per process
    assert f"seq 1 epoch 11: accepted content {theirs:08x}, this " in reject.detail
    totals: dict[str, float] = {}
    for line in emf.read_text().splitlines():
        doc = json.loads(line)
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = doc[m["Name"]]
            totals[m["Name"]] = totals.get(m["Name"], 0) + (
                sum(value) if isinstance(value, list) else value
            )
    assert totals["SeqConflicts"] == 1 and totals["DuplicatesDropped"] == 1
    assert totals["Rejected.seq_conflict"] == 1
