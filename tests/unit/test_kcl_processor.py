"""The ShardProcessor's checkpoint policy, hook by hook (the KCL protocol side is the daemon's)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from railpulse_shared.batch import (
    BatchResult,
    FailureKind,
    RecordFailure,
    StreamRecord,
    process_batch,
)
from railpulse_shared.errors import HandlerError, PermanentError, TransientError
from railpulse_shared.kcl import ShardHandler, ShardProcessor
from railpulse_shared.metrics import Metrics


class Checkpointer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def checkpoint(self, sequence_number: str | None = None, sub: int | None = None) -> None:
        self.calls.append(() if sequence_number is None else (sequence_number, sub))


class Handler(ShardHandler):
    """Fails record 2 transiently once, record 3 permanently; buffers until flushed."""

    def __init__(self) -> None:
        self.outputs: list[int] = []
        self.dead: list[str] = []
        self.flushed = 0
        self.stopped = False
        self.failed_once = False

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        async def one(record: StreamRecord) -> None:
            n = int(record.data)
            if n == 2 and not self.failed_once:
                self.failed_once = True
                raise TransientError("throttled")
            if n == 3:
                raise PermanentError("poison")
            self.outputs.append(n)

        return await process_batch(records, one)

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        self.dead.extend(f.seq for f in failures)

    async def flush(self) -> None:
        self.flushed += 1

    async def stop(self) -> None:
        self.stopped = True


def batch(numbers: list[int], checkpointer: Checkpointer) -> SimpleNamespace:
    records = [
        SimpleNamespace(
            binary_data=str(n).encode(),
            sequence_number=str(100 + n),
            sub_sequence_number=0,
            partition_key="train-1",
            timestamp_millis=0,
        )
        for n in numbers
    ]
    return SimpleNamespace(records=records, checkpointer=checkpointer, millis_behind_latest=0)


def processor(handler: ShardHandler) -> ShardProcessor:
    p = ShardProcessor(handler, checkpoint_interval_s=0, backoff_base_s=0.001)
    p.initialize(SimpleNamespace(shard_id="shardId-1", sequence_number=None))
    return p


def test_poison_is_dead_lettered_transient_retried_then_checkpointed() -> None:
    handler, cp = Handler(), Checkpointer()
    p = processor(handler)
    with capture_logs() as logs:
        p.process_records(batch([1, 2, 3, 4], cp))
    assert handler.outputs == [1, 4, 2]  # 2 succeeded on retry
    assert handler.dead == ["103"]
    assert cp.calls == [("104", 0)]
    assert {"retrying", "record_dead_lettered"} <= {log["event"] for log in logs}


def test_shutdown_requested_flushes_then_checkpoints() -> None:
    handler, cp = Handler(), Checkpointer()
    p = ShardProcessor(handler, checkpoint_interval_s=3600)
    p.initialize(SimpleNamespace(shard_id="shardId-1", sequence_number=None))
    p.process_records(batch([5, 6], cp))
    assert cp.calls == []  # the interval has not passed
    with capture_logs():
        p.shutdown_requested(SimpleNamespace(checkpointer=cp))
    assert handler.flushed >= 1 and handler.stopped
    assert cp.calls == [("106", 0)]


def test_lease_lost_flushes_without_checkpoint() -> None:
    handler, cp = Handler(), Checkpointer()
    p = ShardProcessor(handler, checkpoint_interval_s=3600)
    p.initialize(SimpleNamespace(shard_id="shardId-1", sequence_number=None))
    p.process_records(batch([5], cp))
    with capture_logs():
        p.lease_lost(SimpleNamespace())
    assert handler.flushed >= 1 and handler.stopped and cp.calls == []


def test_shard_ended_checkpoints_the_end() -> None:
    handler, cp = Handler(), Checkpointer()
    p = processor(handler)
    with capture_logs():
        p.shard_ended(SimpleNamespace(checkpointer=cp))
    assert cp.calls == [()]


def test_checkpoint_waits_for_the_durable_position() -> None:
    class Buffering(Handler):
        durable: tuple[str, int] | None = None

        def durable_position(self, processed: tuple[str, int] | None) -> tuple[str, int] | None:
            return self.durable

    handler, cp = Buffering(), Checkpointer()
    p = processor(handler)
    p.process_records(batch([1, 4], cp))
    assert cp.calls == []
    handler.durable = ("104", 0)
    p.process_records(batch([], cp))
    assert cp.calls == [("104", 0)]


class Lines:
    """A metrics sink that keeps the EMF documents it is given."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def write(self, line: bytes) -> None:
        self.docs.append(json.loads(line))

    def total(self, name: str) -> float:
        values = [d[name] for d in self.docs if name in d]
        return sum(sum(v) if isinstance(v, list) else v for v in values)


class Raising(ShardHandler):
    """Raises an unexpected error whenever a call includes record 3 (a handler bug, e.g. an
    OverflowError deep in an encoder), so the whole batch call fails, not one record of it."""

    def __init__(self, bad: int = 3, heals_after: int | None = None) -> None:
        self.bad = bad
        self.heals_after = heals_after
        self.outputs: list[int] = []
        self.dead: list[RecordFailure] = []
        self.calls_with_bad = 0

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        numbers = [int(r.data) for r in records]
        if self.bad in numbers:
            self.calls_with_bad += 1
            if self.heals_after is None or self.calls_with_bad <= self.heals_after:
                raise OverflowError("Python int too large to convert to C long")
        result: BatchResult[Any] = BatchResult()
        for record, n in zip(records, numbers, strict=True):
            if n not in self.outputs:  # a record handled again is not handled twice
                self.outputs.append(n)
            result.succeeded.append((record, None))
        return result

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        self.dead.extend(failures)


def test_a_record_whose_handler_raises_is_dead_lettered_after_n_tries_and_passed() -> None:
    """One record that makes `process` raise cannot stall the shard: the batch is re-run record
    by record, the others succeed, the culprit is tried `max_handler_attempts` times in all,
    then dead-lettered with its error, bytes and position, counted, and checkpointed past."""
    handler, cp, lines = Raising(), Checkpointer(), Lines()
    metrics = Metrics("railpulse", {"service": "test", "stream": "telemetry"}, lines)
    p = ShardProcessor(
        handler,
        stream="telemetry",
        metrics=metrics,
        checkpoint_interval_s=0,
        backoff_base_s=0.001,
        max_handler_attempts=3,
    )
    p.initialize(SimpleNamespace(shard_id="shardId-1", sequence_number=None))
    with capture_logs() as logs:
        p.process_records(batch([1, 2, 3, 4], cp))
    assert handler.outputs == [1, 2, 4]
    assert handler.calls_with_bad == 1 + 3  # the batch, then the record alone three times
    (dead,) = handler.dead
    assert dead.record.data == b"3" and dead.kind is FailureKind.POISON
    assert (dead.record.stream, dead.record.shard_id) == ("telemetry", "shardId-1")
    assert (dead.seq, dead.sub_seq) == ("103", 0)
    assert isinstance(dead.exception, HandlerError) and dead.exception.attempts == 3
    assert dead.error == "HandlerError: OverflowError: Python int too large to convert to C long"
    assert cp.calls == [("104", 0)]
    assert lines.total("RecordsDeadLettered") == 1
    assert lines.total("HandlerErrorsDeadLettered") == 1
    assert lines.total("HandlerErrors") == 3
    assert [log["attempt"] for log in logs if log["event"] == "handler_raised"] == [1, 2, 3]


def test_a_handler_error_that_passes_on_retry_dead_letters_nothing() -> None:
    handler, cp = Raising(heals_after=2), Checkpointer()
    p = processor(handler)
    with capture_logs():
        p.process_records(batch([1, 3, 4], cp))
    assert sorted(handler.outputs) == [1, 3, 4] and handler.dead == []
    assert cp.calls == [("104", 0)]


def test_a_transient_error_raised_by_the_handler_is_retried_not_dead_lettered() -> None:
    class Throttled(Raising):
        async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
            self.calls_with_bad += 1
            if self.calls_with_bad <= 5:
                raise TransientError("throttled")
            return await super().process(records)

    handler, cp = Throttled(bad=-1), Checkpointer()
    p = processor(handler)
    with capture_logs():
        p.process_records(batch([1, 2], cp))
    assert handler.outputs == [1, 2] and handler.dead == []
    assert cp.calls == [("102", 0)]


def test_a_dead_letter_that_raises_ends_the_process_rather_than_dropping_the_batch() -> None:
    class Broken(Raising):
        async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
            raise RuntimeError("no queue")

    handler, cp = Broken(), Checkpointer()
    p = processor(handler)
    with capture_logs(), pytest.raises(SystemExit):
        p.process_records(batch([3, 4], cp))
    assert cp.calls == []
