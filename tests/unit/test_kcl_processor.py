"""The ShardProcessor's checkpoint policy, hook by hook (the KCL protocol side is the daemon's)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from railpulse_shared.batch import BatchResult, RecordFailure, StreamRecord, process_batch
from railpulse_shared.errors import PermanentError, TransientError
from railpulse_shared.kcl import ShardHandler, ShardProcessor


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


def processor(handler: Handler) -> ShardProcessor:
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
