"""Stream, queue and lease readers against moto's real HTTP APIs (no local stack needed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from railpulse_console.feeds import ShardReader
from railpulse_console.lag import ConsumerLag, parse_consumers
from railpulse_console.queues import QueueWatcher
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.config import CommonSettings
from railpulse_shared.contracts import AcceptedFrame, AnyEvent, Reading


@pytest.fixture
async def clients(aws: CommonSettings) -> AsyncIterator[dict[str, Any]]:
    factory = AwsClients(aws)
    async with (
        factory.create("kinesis") as kinesis,
        factory.create("sqs") as sqs,
        factory.create("dynamodb") as dynamodb,
    ):
        yield {"kinesis": kinesis, "sqs": sqs, "dynamodb": dynamodb}


async def _stream(kinesis: Any, shards: int = 1) -> str:
    name = f"console-{uuid.uuid4().hex[:8]}"
    await kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(100):
        summary = await kinesis.describe_stream_summary(StreamName=name)
        if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return name
        await asyncio.sleep(0.05)
    raise TimeoutError(name)


def _frame(train: str, seq: int) -> bytes:
    return codec.encode(
        AcceptedFrame(train=train, seq=seq, ts_ms=1_800_000_000_000 + seq, readings={"speed": Reading(value=1.0)})
    )


async def test_reader_delivers_every_shards_records_and_counts_bad_ones(
    clients: dict[str, Any],
) -> None:
    kinesis = clients["kinesis"]
    stream = await _stream(kinesis, shards=2)
    for i in range(10):
        await kinesis.put_record(StreamName=stream, Data=_frame(f"t{i}", i), PartitionKey=f"t{i}")
    await kinesis.put_record(StreamName=stream, Data=b"not json", PartitionKey="x")
    seen: list[AnyEvent] = []
    reader = ShardReader(kinesis, stream, seen.append, lookback_s=60, poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        for _ in range(100):
            if len(seen) == 10 and reader.status.decode_errors == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sorted(e.seq for e in seen if isinstance(e, AcceptedFrame)) == list(range(10))
    assert reader.status.shards == 2 and reader.status.records == 11
    assert reader.status.error is None and reader.status.last_poll_ms is not None


async def test_reader_finds_new_shards_when_it_relists(clients: dict[str, Any]) -> None:
    kinesis = clients["kinesis"]
    stream = await _stream(kinesis, shards=1)
    reader = ShardReader(kinesis, stream, print, lookback_s=60, poll_s=0.05, relist_s=0)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    for _ in range(200):  # the first listing, with a deadline (a loaded machine is slow)
        if reader.status.shards:
            break
        await asyncio.sleep(0.05)
    assert reader.status.shards == 1
    await kinesis.update_shard_count(
        StreamName=stream, TargetShardCount=2, ScalingType="UNIFORM_SCALING"
    )
    for _ in range(400):
        if reader.status.shards >= 3:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    # moto keeps the parent readable; the two children are picked up by the relisting.
    assert reader.status.shards >= 3


class _ClosingKinesis:
    """A stream whose only shard closes after one record and has two children (as in AWS)."""

    def __init__(self) -> None:
        self.shards = [{"ShardId": "s-0"}]

    async def list_shards(self, **_: Any) -> dict[str, Any]:
        return {"Shards": self.shards}

    async def get_shard_iterator(self, **kw: Any) -> dict[str, Any]:
        return {"ShardIterator": f"{kw['ShardId']}:{kw['ShardIteratorType']}"}

    async def get_records(self, ShardIterator: str, **_: Any) -> dict[str, Any]:
        shard, _, kind = ShardIterator.partition(":")
        if shard == "s-0":
            self.shards = [{"ShardId": "s-0"}, {"ShardId": "s-1"}, {"ShardId": "s-2"}]
            return {"Records": [_record(shard, 0)], "MillisBehindLatest": 0}  # closed: no next
        if kind == "TRIM_HORIZON":  # children are read from their start
            return {
                "Records": [_record(shard, 1)],
                "NextShardIterator": f"{shard}:next",
                "MillisBehindLatest": 0,
            }
        return {"Records": [], "NextShardIterator": ShardIterator, "MillisBehindLatest": 0}


def _record(shard: str, seq: int) -> dict[str, Any]:
    return {"SequenceNumber": f"{shard}-{seq}", "Data": _frame(shard, seq), "PartitionKey": shard}


async def test_reader_follows_a_closed_shard_to_its_children() -> None:
    seen: list[AnyEvent] = []
    reader = ShardReader(_ClosingKinesis(), "s", seen.append, lookback_s=60, poll_s=0.01)
    await reader._list_shards()
    for _ in range(3):
        await reader.poll_once()
    assert sorted(e.train for e in seen if isinstance(e, AcceptedFrame)) == ["s-0", "s-1", "s-2"]
    assert reader.status.shards == 2  # the parent is done


async def test_reader_reports_a_missing_stream_and_keeps_going(clients: dict[str, Any]) -> None:
    reader = ShardReader(clients["kinesis"], "no-such-stream", print, lookback_s=60, poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    for _ in range(100):
        if reader.status.error:
            break
        await asyncio.sleep(0.05)
    assert "no-such-stream" in (reader.status.error or "")
    assert not task.done()  # an error is shown, never the end of the reader
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_queue_depths_and_reasons_only_where_a_peek_changes_nothing(
    clients: dict[str, Any],
) -> None:
    sqs = clients["sqs"]
    terminal, redriven = f"dlq-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    terminal_url = (await sqs.create_queue(QueueName=terminal))["QueueUrl"]
    arn = (await sqs.get_queue_attributes(QueueUrl=terminal_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    redriven_url = (
        await sqs.create_queue(
            QueueName=redriven,
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"2"}}'},
        )
    )["QueueUrl"]
    for url in (terminal_url, redriven_url):
        for reason in ("malformed_json", "oversized", "malformed_json"):
            await sqs.send_message(
                QueueUrl=url,
                MessageBody="{}",
                MessageAttributes={"reason": {"DataType": "String", "StringValue": reason}},
            )
    watcher = QueueWatcher(sqs, (terminal, redriven, "missing-queue"), poll_s=1)
    for _ in range(3):  # more peeks than the redrive's receive count would allow
        for name in watcher.names:
            await watcher.refresh(name)
    assert watcher.status[terminal].by_reason == {"malformed_json": 2, "oversized": 1}
    assert watcher.status[terminal].visible == 3
    assert watcher.status[redriven].by_reason == {} and watcher.status[redriven].visible == 3
    assert "redrive" in watcher.status[redriven].note
    assert watcher.status["missing-queue"].error is not None
    # Nothing moved: the redriven queue's messages were never received.
    attributes = await sqs.get_queue_attributes(
        QueueUrl=redriven_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "3"


async def test_consumer_lag_from_a_lease_table(clients: dict[str, Any]) -> None:
    kinesis, ddb = clients["kinesis"], clients["dynamodb"]
    stream = await _stream(kinesis, shards=1)
    table = f"app-{uuid.uuid4().hex[:8]}"
    await ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    first = await kinesis.put_record(StreamName=stream, Data=_frame("a", 1), PartitionKey="a")
    lease = {"leaseKey": {"S": first["ShardId"]}, "leaseOwner": {"S": "w1"}}
    await ddb.put_item(TableName=table, Item={**lease, "checkpoint": {"S": "TRIM_HORIZON"}})
    lag = ConsumerLag(ddb, kinesis, parse_consumers(f"{table}={stream}, absent=x"), poll_s=1)
    await lag.refresh(table, stream)
    assert lag.status[table].lag_ms is None and "not checkpointed" in lag.status[table].note
    await ddb.put_item(
        TableName=table, Item={**lease, "checkpoint": {"S": first["SequenceNumber"]}}
    )
    await lag.refresh(table, stream)
    assert lag.status[table].lag_ms == 0  # caught up: nothing after the checkpoint
    await kinesis.put_record(StreamName=stream, Data=_frame("a", 2), PartitionKey="a")
    await asyncio.sleep(0.3)
    await lag.refresh(table, stream)
    assert (lag.status[table].lag_ms or 0) >= 250  # the unprocessed record's age
    assert (lag.status[table].leases, lag.status[table].owners) == (1, 1)
    await lag.refresh("absent", "x")
    assert "no lease table" in lag.status["absent"].note
