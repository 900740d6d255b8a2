"""Batched, retrying writers for Kinesis (PutRecords) and SQS (SendMessageBatch).

Both APIs fail per entry: a call can succeed while some of its entries are throttled. Only the
failed entries are retried, with capped exponential backoff and jitter, in their original order;
when the budget runs out the call raises `TransientError`, so the caller's checkpoint never
passes what was not written. Entries are sent at least once: consumers de-duplicate by id.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from railpulse_shared.errors import PermanentError, TransientError

__all__ = [
    "KINESIS_MAX_BATCH",
    "KINESIS_MAX_RECORD_BYTES",
    "SQS_MAX_BATCH",
    "KinesisPublisher",
    "PutFailure",
    "Retry",
    "SqsPublisher",
]

KINESIS_MAX_BATCH = 500
"""PutRecords takes at most 500 records (and 5 MiB) per call."""
KINESIS_MAX_BATCH_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
"""One record's data plus partition key."""
KINESIS_MAX_KEY_CHARS = 256
SQS_MAX_BATCH = 10
"""SendMessageBatch takes at most 10 messages (and 256 KiB) per call."""
SQS_MAX_BATCH_BYTES = 256 * 1024

_PERMANENT_CODES = frozenset(
    {
        "ValidationException",
        "InvalidParameterValue",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "InvalidArgumentException",
    }
)


@dataclass(frozen=True, slots=True)
class PutFailure:
    """A record `KinesisPublisher.put_each` could not write: `permanent` if it never can be
    (too large, refused on its own), else it was still failing when the retries ran out."""

    error: str
    permanent: bool


# Codes for which a refused PutRecords call may be the fault of one of its records.
_RECORD_FAULT_CODES = frozenset({"ValidationException", "InvalidArgumentException"})


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int = 8
    base_s: float = 0.05
    cap_s: float = 2.0

    async def pause(self, attempt: int) -> None:
        delay = min(self.cap_s, self.base_s * 2**attempt)
        await asyncio.sleep(random.uniform(delay / 2, delay))


def _classify(exc: Exception, what: str) -> Exception:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _PERMANENT_CODES:
            return PermanentError(f"{what}: {code}: {exc}")
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def _chunks(items: Sequence[Any], size: int, max_bytes: int, weight: Any) -> list[list[Any]]:
    chunks: list[list[Any]] = [[]]
    total = 0
    for item in items:
        w = weight(item)
        if chunks[-1] and (len(chunks[-1]) >= size or total + w > max_bytes):
            chunks.append([])
            total = 0
        chunks[-1].append(item)
        total += w
    return [c for c in chunks if c]


class KinesisPublisher:
    """PutRecords to one stream; `put` returns once every record is written."""

    def __init__(self, client: Any, stream: str, retry: Retry | None = None) -> None:
        self.client = client
        self.stream = stream
        self.retry = retry or Retry()

    async def put(self, records: Sequence[tuple[str, bytes]]) -> list[str]:
        """Write (partition key, data) pairs; returns their sequence numbers in order."""
        sequence_numbers: list[str] = [""] * len(records)
        indexed = list(enumerate(records))
        for chunk in _chunks(
            indexed,
            KINESIS_MAX_BATCH,
            KINESIS_MAX_BATCH_BYTES,
            lambda item: len(item[1][1]) + len(item[1][0]),
        ):
            pending = chunk
            for attempt in range(self.retry.attempts):
                try:
                    response = await self.client.put_records(
                        StreamName=self.stream,
                        Records=[{"PartitionKey": key, "Data": data} for _, (key, data) in pending],
                    )
                except (ClientError, BotoCoreError) as exc:
                    error = _classify(exc, f"PutRecords {self.stream}")
                    if isinstance(error, PermanentError) or attempt == self.retry.attempts - 1:
                        raise error from exc
                    await self.retry.pause(attempt)
                    continue
                failed = []
                for (index, record), result in zip(pending, response["Records"], strict=True):
                    if "SequenceNumber" in result and not result.get("ErrorCode"):
                        sequence_numbers[index] = result["SequenceNumber"]
                    else:
                        failed.append((index, record))
                pending = failed
                if not pending:
                    break
                await self.retry.pause(attempt)
            if pending:
                raise TransientError(
                    f"PutRecords {self.stream}: {len(pending)} records still failing "
                    f"after {self.retry.attempts} attempts"
                )
        return sequence_numbers

    async def put_each(self, records: Sequence[tuple[str, bytes]]) -> list[str | PutFailure]:
        """Like `put`, but one bad record never costs the others: each record gets its sequence
        number or a `PutFailure`, and nothing raises. A record over Kinesis's limits fails
        before any call; a call refused as a whole for a reason a record can cause is split in
        halves until the bad records stand alone."""
        outcomes: list[str | PutFailure] = [PutFailure("not attempted", False)] * len(records)
        valid: list[tuple[int, tuple[str, bytes]]] = []
        for index, (key, data) in enumerate(records):
            size = len(key.encode()) + len(data)
            if not key or len(key) > KINESIS_MAX_KEY_CHARS:
                outcomes[index] = PutFailure(f"partition key of {len(key)} characters", True)
            elif size > KINESIS_MAX_RECORD_BYTES:
                outcomes[index] = PutFailure(
                    f"record of {size} bytes is over Kinesis's {KINESIS_MAX_RECORD_BYTES}", True
                )
            else:
                valid.append((index, (key, data)))
        for chunk in _chunks(
            valid,
            KINESIS_MAX_BATCH,
            KINESIS_MAX_BATCH_BYTES,
            lambda item: len(item[1][1]) + len(item[1][0]),
        ):
            await self._put_isolating(chunk, outcomes)
        return outcomes

    async def _put_isolating(
        self, chunk: list[tuple[int, tuple[str, bytes]]], outcomes: list[str | PutFailure]
    ) -> None:
        pending = chunk
        last_error = ""
        for attempt in range(self.retry.attempts):
            try:
                response = await self.client.put_records(
                    StreamName=self.stream,
                    Records=[{"PartitionKey": key, "Data": data} for _, (key, data) in pending],
                )
            except (ClientError, BotoCoreError) as exc:
                error = _classify(exc, f"PutRecords {self.stream}")
                last_error = str(error)
                if isinstance(error, PermanentError):
                    code = (
                        exc.response.get("Error", {}).get("Code", "")
                        if isinstance(exc, ClientError)
                        else ""
                    )
                    if code in _RECORD_FAULT_CODES and len(pending) > 1:
                        half = len(pending) // 2
                        await self._put_isolating(pending[:half], outcomes)
                        await self._put_isolating(pending[half:], outcomes)
                        return
                    for index, _ in pending:
                        outcomes[index] = PutFailure(last_error, True)
                    return
                if attempt < self.retry.attempts - 1:
                    await self.retry.pause(attempt)
                continue
            failed = []
            for (index, record), result in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in result and not result.get("ErrorCode"):
                    outcomes[index] = result["SequenceNumber"]
                else:
                    failed.append((index, record))
                    last_error = f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}"
            pending = failed
            if not pending:
                return
            if attempt < self.retry.attempts - 1:
                await self.retry.pause(attempt)
        for index, _ in pending:
            outcomes[index] = PutFailure(
                f"still failing after {self.retry.attempts} attempts: {last_error}", False
            )


class SqsPublisher:
    """SendMessageBatch to one queue; `send` returns once every message is accepted."""

    def __init__(self, client: Any, queue_url: str, retry: Retry | None = None) -> None:
        self.client = client
        self.queue_url = queue_url
        self.retry = retry or Retry()

    @classmethod
    async def for_queue(
        cls, client: Any, queue_name: str, retry: Retry | None = None
    ) -> SqsPublisher:
        try:
            response = await client.get_queue_url(QueueName=queue_name)
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, f"GetQueueUrl {queue_name}") from exc
        return cls(client, response["QueueUrl"], retry)

    async def send(self, bodies: Sequence[str]) -> None:
        indexed = [(str(i), body) for i, body in enumerate(bodies)]
        for chunk in _chunks(
            indexed, SQS_MAX_BATCH, SQS_MAX_BATCH_BYTES, lambda item: len(item[1].encode())
        ):
            pending = chunk
            for attempt in range(self.retry.attempts):
                try:
                    response = await self.client.send_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": i, "MessageBody": body} for i, body in pending],
                    )
                except (ClientError, BotoCoreError) as exc:
                    error = _classify(exc, f"SendMessageBatch {self.queue_url}")
                    if isinstance(error, PermanentError) or attempt == self.retry.attempts - 1:
                        raise error from exc
                    await self.retry.pause(attempt)
                    continue
                failed_ids = {f["Id"] for f in response.get("Failed", [])}
                sender_faults = [f for f in response.get("Failed", []) if f.get("SenderFault")]
                if sender_faults:
                    raise PermanentError(f"SendMessageBatch rejected messages: {sender_faults}")
                pending = [(i, body) for i, body in pending if i in failed_ids]
                if not pending:
                    break
                await self.retry.pause(attempt)
            if pending:
                raise TransientError(
                    f"SendMessageBatch: {len(pending)} messages still failing "
                    f"after {self.retry.attempts} attempts"
                )
