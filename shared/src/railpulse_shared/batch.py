"""Partial failure is a result: process a batch record by record, collect what failed and why.

An async handler processes one record. `process_batch` turns its outcome into a `BatchResult`:
a `PermanentError` (or any unexpected exception) makes the record *poison* (dead-letter it, then
the checkpoint may pass it); a `TransientError` makes it *transient* (retry it with backoff; the
checkpoint never passes it). Only a batch in which every record failed raises, and that can be
switched off.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import msgspec

from railpulse_shared.errors import RailpulseError, TransientError

__all__ = [
    "BatchProcessingError",
    "BatchResult",
    "FailureKind",
    "RecordFailure",
    "StreamRecord",
    "process_batch",
]

R = TypeVar("R")


class StreamRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One Kinesis record as a consumer sees it (after KPL de-aggregation)."""

    data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    partition_key: str = ""
    arrival_ms: int = 0
    shard_id: str = ""
    stream: str = ""

    @property
    def position(self) -> tuple[int, int]:
        """Sortable (sequence, sub-sequence): Kinesis sequence numbers are decimal strings."""
        return int(self.sequence_number), self.sub_sequence_number


class FailureKind(enum.StrEnum):
    POISON = "poison"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class RecordFailure:
    record: StreamRecord
    kind: FailureKind
    error: str
    """`ExcType: message`, as logged and dead-lettered."""
    exception: BaseException | None = None

    @property
    def seq(self) -> str:
        return self.record.sequence_number

    @property
    def sub_seq(self) -> int:
        return self.record.sub_sequence_number


@dataclass(slots=True)
class BatchResult(Generic[R]):
    succeeded: list[tuple[StreamRecord, R]] = field(default_factory=list)
    failed: list[RecordFailure] = field(default_factory=list)

    @property
    def poison(self) -> list[RecordFailure]:
        return [f for f in self.failed if f.kind is FailureKind.POISON]

    @property
    def transient(self) -> list[RecordFailure]:
        return [f for f in self.failed if f.kind is FailureKind.TRANSIENT]


class BatchProcessingError(RailpulseError):
    """Every record of a batch failed."""

    def __init__(self, message: str, child_exceptions: Sequence[RecordFailure]) -> None:
        super().__init__(message)
        self.child_exceptions = list(child_exceptions)


def failure_of(record: StreamRecord, exc: BaseException) -> RecordFailure:
    kind = FailureKind.TRANSIENT if isinstance(exc, TransientError) else FailureKind.POISON
    return RecordFailure(record, kind, f"{type(exc).__name__}: {exc}", exc)


async def process_batch(
    records: Sequence[StreamRecord],
    handler: Callable[[StreamRecord], Awaitable[R]],
    *,
    concurrency: int = 1,
    raise_on_entire_failure: bool = False,
) -> BatchResult[R]:
    """Run `handler` on every record (in order when `concurrency` is 1) and collect outcomes."""
    result: BatchResult[R] = BatchResult()

    async def one(record: StreamRecord) -> None:
        try:
            result.succeeded.append((record, await handler(record)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result.failed.append(failure_of(record, exc))

    if concurrency <= 1:
        for record in records:
            await one(record)
    else:
        gate = asyncio.Semaphore(concurrency)

        async def gated(record: StreamRecord) -> None:
            async with gate:
                await one(record)

        await asyncio.gather(*(gated(r) for r in records))
    if raise_on_entire_failure and records and not result.succeeded:
        raise BatchProcessingError(f"all {len(records)} records failed", result.failed)
    return result
