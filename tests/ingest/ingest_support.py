"""Helpers of the ingest tests: records as the IoT rule writes them, and per-test AWS resources."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session

from railpulse_ingest.settings import IngestSettings
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import StreamRecord
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import Frame, RuleEnvelope

for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_key, _value)


_SESSION = get_session()


def envelope(payload: bytes, principal: str, *, topic: str = "", received_ms: int = 0) -> bytes:
    return codec.encode(
        RuleEnvelope(
            topic=topic or f"trains/{principal}/telemetry",
            principal=principal,
            received_ms=received_ms or int(time.time() * 1000),
            payload=payload,
        )
    )


def record(
    data: bytes, seq: int, *, shard: str = "shardId-000000000000", sub: int = 0
) -> StreamRecord:
    return StreamRecord(
        data=data,
        sequence_number=str(49_000_000_000 + seq),
        sub_sequence_number=sub,
        partition_key="pk",
        shard_id=shard,
        stream="telemetry-raw",
    )


def frame(train: str = "train-001", seq: int = 1, **readings: float) -> Frame:
    return Frame(
        train=train,
        seq=seq,
        ts_ms=int(time.time() * 1000) - 1000,
        readings=readings or {"bearing_temp_1": 40.0, "speed": 80.0},
    )


@dataclass
class Stack:
    settings: IngestSettings
    clients: AwsClients

    async def read_stream(self, stream: str) -> list[bytes]:
        """Every record of `stream`, all shards, oldest first per shard."""
        out: list[bytes] = []
        async with self.clients.create("kinesis") as kinesis:
            shards = (await kinesis.list_shards(StreamName=stream))["Shards"]
            for shard in shards:
                it = (
                    await kinesis.get_shard_iterator(
                        StreamName=stream,
                        ShardId=shard["ShardId"],
                        ShardIteratorType="TRIM_HORIZON",
                    )
                )["ShardIterator"]
                while it:
                    response = await kinesis.get_records(ShardIterator=it, Limit=10_000)
                    out.extend(r["Data"] for r in response["Records"])
                    if not response["Records"]:
                        break
                    it = response.get("NextShardIterator")
        return out

    async def queue_messages(self) -> list[dict[str, Any]]:
        """Every message on the rejects queue (made visible again afterwards)."""
        async with self.clients.create("sqs") as sqs:
            url = (await sqs.get_queue_url(QueueName=self.settings.queue_rejects))["QueueUrl"]
            seen: list[dict[str, Any]] = []
            while True:
                response = await sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=30,
                    MessageAttributeNames=["All"],
                )
                messages = response.get("Messages") or []
                if not messages:
                    break
                seen.extend(messages)
            for m in seen:
                await sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            return seen


async def make_stack(
    url: str, raw_shards: int = 1, *, max_receives: int | None = None, **overrides: Any
) -> Stack:
    """Fresh streams, queues and bucket on moto's server. `max_receives`: give `rejects` a
    dead-letter queue after that many receives, as the deployed queue has (after 5)."""
    suffix = uuid.uuid4().hex[:8]
    settings = load_settings(
        IngestSettings,
        env={},
        aws_endpoint_url=url,
        stream_raw=f"raw-{suffix}",
        stream_telemetry=f"telemetry-{suffix}",
        stream_events=f"events-{suffix}",
        queue_rejects=f"rejects-{suffix}",
        queue_rejects_dlq=f"rejects-dlq-{suffix}",
        bucket_state=f"state-{suffix}",
        **overrides,
    )
    clients = AwsClients(settings)
    clients.session = _SESSION  # one botocore session: its loaded service models are reused
    async with (
        clients.create("kinesis") as kinesis,
        clients.create("sqs") as sqs,
        clients.create("s3") as s3,
    ):
        await kinesis.create_stream(StreamName=settings.stream_raw, ShardCount=raw_shards)
        await kinesis.create_stream(StreamName=settings.stream_telemetry, ShardCount=2)
        # Rejects go on `events` too, for the lake (railpulse_shared.rejects).
        await kinesis.create_stream(StreamName=settings.stream_events, ShardCount=1)
        attributes = {}
        if max_receives is not None:
            dlq = await sqs.create_queue(QueueName=settings.queue_rejects_dlq)
            arn = (
                await sqs.get_queue_attributes(
                    QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"]
                )
            )["Attributes"]["QueueArn"]
            policy = {"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}
            attributes["RedrivePolicy"] = json.dumps(policy)
        await sqs.create_queue(QueueName=settings.queue_rejects, Attributes=attributes)
        await s3.create_bucket(Bucket=settings.bucket_state)
    return Stack(settings, clients)
