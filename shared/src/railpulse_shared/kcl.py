"""Run an async shard handler under the real KCL MultiLangDaemon (amazon_kclpy's v3 interface).

The MultiLangDaemon starts one child process per leased shard and talks to it over stdin/stdout.
`ShardProcessor` implements the five hooks and owns the checkpoint policy; the business logic is a
`ShardHandler` that processes one batch at a time and never sees the protocol:

- `process_records`: run the handler; dead-letter poison records; retry transient ones with capped
  backoff (the checkpoint never passes them; after `max_retry_s` the process exits so the KCL
  restarts the shard from its last checkpoint rather than dropping data); then checkpoint at the
  handler's durable position, at most every `checkpoint_interval_s`.
- A handler that *raises* (anything but `TransientError`) breaks its contract for some record, and
  must not stall the shard: the batch is re-run one record at a time, each record that still
  raises is retried `max_handler_attempts` times in all, then dead-lettered as a `HandlerError`
  (its error, raw bytes and position) and passed, like any poison record. Handlers must take a
  record they already processed again without doing its work twice (the KCL's replays after a
  restart need that too).
- `shard_ended`: flush, then `checkpoint()` (or the shard end is retried forever).
- `shutdown_requested`: flush, then checkpoint: the last chance.
- `lease_lost`: flush only (another worker owns the shard; checkpointing would fail).

Exceptions never escape a hook: amazon_kclpy would log them and acknowledge the batch, dropping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, TypeVar

import structlog
from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor

from railpulse_shared import metric_names as mn
from railpulse_shared.batch import BatchResult, FailureKind, RecordFailure, StreamRecord
from railpulse_shared.errors import HandlerError, RailpulseError, TransientError
from railpulse_shared.metrics import Metrics

__all__ = [
    "CheckpointOutcome",
    "Position",
    "ShardHandler",
    "ShardProcessor",
    "run_processor",
]

logger = structlog.get_logger()
_T = TypeVar("_T")

Position = tuple[str, int]
"""A checkpointable position: (sequence number, sub-sequence number)."""


class CheckpointOutcome(enum.Enum):
    """What the MultiLangDaemon answered to a checkpoint request."""

    OK = "ok"
    THROTTLED = "ThrottlingException"
    SHUTDOWN = "ShutdownException"
    """The lease is gone: stop processing, never retry."""
    INVALID_STATE = "InvalidStateException"
    OTHER = "other"

    @classmethod
    def of(cls, error: CheckpointError) -> CheckpointOutcome:
        try:
            return cls(str(error.value))
        except ValueError:
            return cls.OTHER


class ShardHandler(ABC):
    """One shard's business logic. Subclasses implement `process`; the rest is optional."""

    shard_id: str = ""

    async def start(self, shard_id: str) -> None:
        """Open clients and restore state for this shard."""
        self.shard_id = shard_id

    @abstractmethod
    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        """Process a batch; report each record's failure in the result, never raise for one."""

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        """Park poison records with their reason. Raise `TransientError` if that failed."""
        raise NotImplementedError(f"{type(self).__name__} has no dead-letter queue")

    async def flush(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Make buffered output durable (called before checkpoints at shutdown and shard end)."""

    def durable_position(self, processed: Position | None) -> Position | None:
        """The position up to which output is durable; buffering handlers hold it back."""
        return processed

    async def stop(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Close clients."""


class ShardProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """amazon_kclpy v3 record processor that drives a `ShardHandler` on one asyncio loop."""

    def __init__(
        self,
        handler: ShardHandler,
        *,
        stream: str = "",
        metrics: Metrics | None = None,
        checkpoint_interval_s: float = 5.0,
        max_retry_s: float = 300.0,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
        max_handler_attempts: int = 3,
    ) -> None:
        self.handler = handler
        self.stream = stream
        self.metrics = metrics
        self.checkpoint_interval_s = checkpoint_interval_s
        self.max_retry_s = max_retry_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_handler_attempts = max_handler_attempts
        """How often a record whose handler raises is tried before it is dead-lettered."""
        self.shard_id = ""
        self._runner: asyncio.Runner | None = None
        self._processed: Position | None = None
        """The last record handled (output may still be buffered by the handler)."""
        self._checkpointed: Position | None = None
        self._last_checkpoint = time.monotonic()
        self._dead_lettered = 0
        """Records of the current batch dead-lettered so far."""

    # -- the five hooks ------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        structlog.contextvars.bind_contextvars(shard_id=self.shard_id, stream=self.stream)
        self._runner = asyncio.Runner()
        self._run(self.handler.start(self.shard_id))
        logger.info("shard_initialized", sequence=initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        started = time.monotonic()
        records = [self._record(r) for r in process_records_input.records]
        self._dead_lettered = 0
        # Empty batches arrive too (callProcessRecordsEvenForEmptyRecordList), so a handler's
        # time-based flush happens on a quiet shard.
        try:
            self._run(self._process(records))
        except Exception:
            # Never let amazon_kclpy log and acknowledge the batch: it would be dropped unhandled.
            # Leave instead; the KCL restarts the shard from its last checkpoint.
            logger.exception("process_records_failed")
            raise SystemExit(1) from None
        if records:
            self._processed = (records[-1].sequence_number, records[-1].sub_sequence_number)
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s:
            self._checkpoint_durable(process_records_input.checkpointer)
        if self.metrics is not None:
            # Both with every batch, zeros included: the error-rate alarm's numbers
            # (railpulse_shared.metric_names.ERROR_RATE).
            self.metrics.add(mn.RECORDS_IN, len(records))
            self.metrics.add(mn.RECORDS_DEAD_LETTERED, self._dead_lettered)
            self.metrics.add(mn.BATCH_LATENCY, (time.monotonic() - started) * 1000, "Milliseconds")
            behind = process_records_input.millis_behind_latest
            if behind is not None:
                self.metrics.add(mn.MILLIS_BEHIND_LATEST, behind, "Milliseconds")
            self.metrics.flush()

    def lease_lost(self, lease_lost_input: Any) -> None:
        logger.info("lease_lost")
        self._finish(checkpointer=None)

    def shard_ended(self, shard_ended_input: Any) -> None:
        logger.info("shard_ended")
        self._run(self.handler.flush())
        # At a shard end the checkpoint carries no position: it records SHARD_END.
        self._checkpoint(shard_ended_input.checkpointer, None, at_end=True)
        self._finish(checkpointer=None)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        logger.info("shutdown_requested")
        self._finish(checkpointer=shutdown_requested_input.checkpointer)

    # -- policy --------------------------------------------------------------------------------

    async def _process(self, records: list[StreamRecord]) -> None:
        deadline = time.monotonic() + self.max_retry_s
        pending: Sequence[StreamRecord] = records
        attempt = 0
        raised: dict[tuple[int, int], int] = {}
        while True:
            result = await self._attempt(pending, raised)
            poison = result.poison
            if poison:
                await self._retry(partial(self.handler.dead_letter, poison), deadline)
                for failure in poison:
                    logger.warning(
                        "record_dead_lettered",
                        sequence=failure.seq,
                        sub_sequence=failure.sub_seq,
                        error=failure.error,
                    )
                self._dead_lettered += len(poison)
                if self.metrics is not None:
                    errors = sum(isinstance(f.exception, HandlerError) for f in poison)
                    if errors:
                        self.metrics.add(mn.HANDLER_ERRORS_DEAD_LETTERED, errors)
            # Keep the original order of what is retried (per-partition order matters).
            retry = {id(f.record) for f in result.transient}
            pending = [r for r in pending if id(r) in retry]
            if not pending:
                return
            if self.metrics is not None:
                self.metrics.add(mn.RECORDS_RETRIED, len(pending))
            attempt += 1
            await self._backoff(attempt, deadline, result.transient[0].error)

    async def _attempt(
        self, records: Sequence[StreamRecord], raised: dict[tuple[int, int], int]
    ) -> BatchResult[Any]:
        """The handler's result for `records`; when it raises, the outcome of each record alone.

        `raised` counts, per record position, the calls of that record alone that raised: below
        `max_handler_attempts` the record is reported transient (retried with backoff), at it
        poison (a `HandlerError`, dead-lettered).
        """
        try:
            return await self.handler.process(records)
        except TransientError as exc:
            return BatchResult(failed=[_failure(r, FailureKind.TRANSIENT, exc) for r in records])
        except Exception as exc:
            if len(records) > 1:
                logger.warning(
                    "handler_raised_isolating", records=len(records), error=_describe(exc)
                )
                merged: BatchResult[Any] = BatchResult()
                for record in records:
                    alone = await self._attempt([record], raised)
                    merged.succeeded.extend(alone.succeeded)
                    merged.failed.extend(alone.failed)
                return merged
            (record,) = records
            count = raised[record.position] = raised.get(record.position, 0) + 1
            logger.warning(
                "handler_raised",
                sequence=record.sequence_number,
                sub_sequence=record.sub_sequence_number,
                attempt=count,
                error=_describe(exc),
                exc_info=count == 1,
            )
            if self.metrics is not None:
                self.metrics.add(mn.HANDLER_ERRORS, 1)
            if count < self.max_handler_attempts:
                return BatchResult(failed=[_failure(record, FailureKind.TRANSIENT, exc)])
            error = HandlerError(exc, count)
            error.__cause__ = exc
            return BatchResult(failed=[_failure(record, FailureKind.POISON, error)])

    async def _retry(self, action: Callable[[], Coroutine[Any, Any, _T]], deadline: float) -> _T:
        attempt = 0
        while True:
            try:
                return await action()
            except TransientError as exc:
                attempt += 1
                await self._backoff(attempt, deadline, f"{type(exc).__name__}: {exc}")

    async def _backoff(self, attempt: int, deadline: float, error: str) -> None:
        if time.monotonic() >= deadline:
            logger.error("retries_exhausted", error=error, attempts=attempt)
            # Exit without checkpointing: the KCL restarts this shard from its last checkpoint.
            raise SystemExit(1)
        delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(delay / 2, delay)  # jitter: workers retrying together spread out
        logger.warning("retrying", attempt=attempt, delay_s=round(delay, 3), error=error)
        await asyncio.sleep(delay)

    def _finish(self, checkpointer: Any) -> None:
        try:
            self._run(self.handler.flush())
            if checkpointer is not None:
                # Always answer a shutdown request with a checkpoint, even at an unchanged
                # position: the KCL completes the processor's final shutdown only after it.
                position = self.handler.durable_position(self._processed)
                if position is not None:
                    self._checkpoint(checkpointer, position)
                else:
                    logger.info("nothing_to_checkpoint")
            self._run(self.handler.stop())
        finally:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            if self.metrics is not None:
                self.metrics.flush()

    def _checkpoint_durable(self, checkpointer: Any) -> None:
        position = self.handler.durable_position(self._processed)
        if position is not None and position != self._checkpointed:
            self._checkpoint(checkpointer, position)

    def _checkpoint(
        self, checkpointer: Any, position: Position | None, at_end: bool = False
    ) -> None:
        for attempt in range(1, 6):
            try:
                if position is None:
                    checkpointer.checkpoint()
                else:
                    checkpointer.checkpoint(position[0], position[1])
                self._last_checkpoint = time.monotonic()
                self._checkpointed = position
                logger.debug("checkpointed", position=position, at_end=at_end)
                return
            except CheckpointError as exc:
                outcome = CheckpointOutcome.of(exc)
                if outcome is CheckpointOutcome.THROTTLED:
                    time.sleep(min(2.0, 0.1 * 2**attempt))
                    continue
                logger.warning("checkpoint_failed", outcome=outcome.name, error=str(exc))
                return
        logger.warning("checkpoint_throttled", position=position)

    # -- plumbing ------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coro)

    def _record(self, record: Any) -> StreamRecord:
        return StreamRecord(
            data=record.binary_data,
            sequence_number=record.sequence_number,
            sub_sequence_number=int(record.sub_sequence_number or 0),
            partition_key=record.partition_key,
            arrival_ms=record.timestamp_millis,
            shard_id=self.shard_id,
            stream=self.stream,
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _failure(record: StreamRecord, kind: FailureKind, exc: BaseException) -> RecordFailure:
    return RecordFailure(record, kind, _describe(exc), exc)


def run_processor(make_processor: Callable[[], ShardProcessor]) -> None:
    """The entry point of a KCL child process: stdout is the protocol, so nothing else may use it.

    The daemon owns the child's life: stopped, it asks each child to flush and checkpoint
    (`shutdown_requested`), and a child whose daemon is gone reads the end of its stdin. So the
    child ignores SIGTERM. A SIGTERM sent to the whole process group (a local supervisor's
    `killpg`, `kill -- -PGID`) used to end it before the daemon's request came, without its
    checkpoint, and a detector restarted that way replayed minutes of frames."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    protocol_out = sys.stdout
    sys.stdout = sys.stderr  # a stray print() must not corrupt the protocol channel
    try:
        kcl.KCLProcess(make_processor(), output_file=protocol_out).run()
    except RailpulseError:
        logger.exception("processor_failed")
        raise SystemExit(1) from None
    finally:
        with contextlib.suppress(Exception):
            sys.stdout = protocol_out
