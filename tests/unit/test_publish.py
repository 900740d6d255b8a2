"""Kinesis and SQS writers: against moto's real HTTP server, and their partial-failure retry."""

from __future__ import annotations

from typing import Any

import pytest

from railpulse_shared.aws import AwsClients
from railpulse_shared.config import CommonSettings
from railpulse_shared.errors import TransientError
from railpulse_shared.publish import KinesisPublisher, Retry, SqsPublisher


@pytest.fixture
def clients(aws: CommonSettings) -> AwsClients:
    return AwsClients(aws)


async def test_put_records_in_chunks_keeps_order(clients: AwsClients) -> None:
    async with clients.create("kinesis") as kinesis:
        await kinesis.create_stream(StreamName="pub-test", ShardCount=1)
        records = [(f"train-{i % 3}", f"record-{i}".encode()) for i in range(1203)]
        sequence_numbers = await KinesisPublisher(kinesis, "pub-test").put(records)
        assert len(set(sequence_numbers)) == 1203
        shard = (await kinesis.list_shards(StreamName="pub-test"))["Shards"][0]["ShardId"]
        iterator = (await kinesis.get_shard_iterator(
            StreamName="pub-test", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        ))["ShardIterator"]
        got: list[bytes] = []
        while len(got) < 1203:
            page = await kinesis.get_records(ShardIterator=iterator, Limit=10000)
            got.extend(r["Data"] for r in page["Records"])
            iterator = page["NextShardIterator"]
        assert got == [data for _, data in records]


async def test_send_message_batch(clients: AwsClients) -> None:
    async with clients.create("sqs") as sqs:
        await sqs.create_queue(QueueName="pub-test")
        publisher = await SqsPublisher.for_queue(sqs, "pub-test")
        await publisher.send([f"message {i}" for i in range(23)])
        bodies: set[str] = set()
        for _ in range(10):
            page = await sqs.receive_message(QueueUrl=publisher.queue_url, MaxNumberOfMessages=10)
            bodies.update(m["Body"] for m in page.get("Messages", []))
            if len(bodies) == 23:
                break
        assert bodies == {f"message {i}" for i in range(23)}


class Throttling:
    """A Kinesis client whose first calls throttle some entries (unit test of the retry)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[bytes]] = []

    async def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        results = []
        for r in Records:
            if self.failures > 0 and r["Data"].endswith(b"1"):
                self.failures -= 1
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                results.append({"SequenceNumber": r["Data"].decode()})
        return {"Records": results, "FailedRecordCount": 0}


async def test_only_failed_entries_are_retried_in_order() -> None:
    client = Throttling(failures=2)
    records = [("k", f"r{i}".encode()) for i in range(12)]
    result = await KinesisPublisher(client, "s", Retry(base_s=0.001)).put(records)
    assert result == [f"r{i}" for i in range(12)]
    assert client.calls[1] == [b"r1", b"r11"]


async def test_exhausted_retries_raise_transient() -> None:
    client = Throttling(failures=10**6)
    with pytest.raises(TransientError, match="still failing"):
        await KinesisPublisher(client, "s", Retry(attempts=3, base_s=0.001)).put([("k", b"r1")])
