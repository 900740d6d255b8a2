"""One shard's archive: buffer by size and age, flush to the lake exactly once, know what is durable.

`ShardArchive` holds no KCL knowledge (the handler adapts it), so tests and the benchmark drive it
directly. Its invariants, with the manifest (see `manifest.py`):

- a record is in the lake once its range is `committed`; the durable position (what the KCL may
  checkpoint) never passes a buffered or pending record;
- every flush starts right after the previous committed range, and a half-done (`pending`) flush
  is redone with the same boundaries, so keys and bytes repeat instead of overlapping;
- a buffered event the lake cannot hold (see `lake.build_storable`) is handed to `reject` (the
  dead-letter queue) before its flush commits, and the flush stores the rest: one such event never
  stalls the shard, and it is never passed without being dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from railpulse_archiver.catalog import GlueCatalog
from railpulse_archiver.errors import LakeUnavailableError
from railpulse_archiver.lake import Archivable, LakeObject, build_storable
from railpulse_archiver.manifest import Pending, ShardManifest, load_manifest, save_manifest
from railpulse_archiver.store import ObjectStore
from railpulse_archiver.tables import TABLES, Located
from railpulse_shared import codec
from railpulse_shared.batch import (
    BatchResult,
    FailureKind,
    RecordFailure,
    StreamRecord,
    failure_of,
)
from railpulse_shared.contracts import AcceptedFrame, AlarmTransition, Anomaly, RejectedRecord
from railpulse_shared.errors import ContractError, TransientError, UnstorableError

__all__ = ["BufferHints", "FlushStats", "ShardArchive", "decode_archivable"]

logger = structlog.get_logger()

SeqPos = tuple[str, int]


@dataclass(frozen=True, slots=True)
class BufferHints:
    """Flush at whichever comes first (Firehose's buffering hints)."""

    max_records: int = 50_000
    max_bytes: int = 8 * 1024 * 1024
    max_age_s: float = 30.0


@dataclass(slots=True)
class FlushStats:
    flushes: int = 0
    objects: int = 0
    rows: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    unstorable: int = 0


Reject = Callable[[Sequence[RecordFailure]], Awaitable[None]]
"""Dead-letter records (raises `TransientError` when that failed)."""


@dataclass(slots=True)
class _Buffer:
    items: list[tuple[Located, Archivable]] = field(default_factory=list)
    positions: list[SeqPos] = field(default_factory=list)
    records: list[StreamRecord] = field(default_factory=list)
    """The records as they arrived: the raw bytes of anything dead-lettered at a flush."""
    bytes: int = 0
    since: float = 0.0

    def clear(self) -> None:
        self.items.clear()
        self.positions.clear()
        self.records.clear()
        self.bytes = 0


def _key(pos: SeqPos) -> tuple[int, int]:
    return int(pos[0]), pos[1]


def decode_archivable(data: bytes) -> Archivable:
    event = codec.decode_event(data)
    if not isinstance(event, AcceptedFrame | Anomaly | AlarmTransition | RejectedRecord):
        raise ContractError(f"{type(event).__name__} is not archived", "$.kind")
    return event


class ShardArchive:
    def __init__(
        self,
        store: ObjectStore,
        *,
        stream: str,
        shard: str,
        catalog: GlueCatalog | None = None,
        hints: BufferHints | None = None,
        retry_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        reject: Reject | None = None,
    ) -> None:
        self.store = store
        self.stream = stream
        self.shard = shard
        self.catalog = catalog
        self.hints = hints or BufferHints()
        self.retry_s = retry_s
        self.clock = clock
        self.reject = reject
        """Where events the lake cannot hold go; without it such an event fails the flush."""
        self.manifest = ShardManifest()
        self.stats = FlushStats()
        self._buffer = _Buffer()
        self._durable: SeqPos | None = None
        self._seen: SeqPos | None = None
        """The last position offered: a flush happens right after a record or at a batch's end,
        so at a flush everything up to here is either in it or was passed (poison, already in)."""

    async def open(self) -> None:
        self.manifest = await load_manifest(self.store, self.stream, self.shard)
        logger.info(
            "archive_opened",
            committed=self.manifest.committed,
            pending=self.manifest.pending is not None,
        )

    # -- intake ----------------------------------------------------------------------------------

    async def offer(self, records: Sequence[StreamRecord]) -> BatchResult[None]:
        """Buffer a batch; flush when a hint is reached (or a pending flush's end)."""
        result: BatchResult[None] = BatchResult()
        committed = self.manifest.committed
        for record in records:
            pos: SeqPos = (record.sequence_number, record.sub_sequence_number)
            self._seen = pos
            if committed is not None and _key(pos) <= _key(committed):
                # Replayed from an older checkpoint: already in the lake, and nothing before it
                # can be buffered (the buffer only ever holds records after `committed`).
                self._durable = pos
                result.succeeded.append((record, None))
                continue
            if self._buffer.positions and _key(pos) <= _key(self._buffer.positions[-1]):
                # Offered again (the adapter re-runs a batch whose call raised): buffered once.
                result.succeeded.append((record, None))
                continue
            try:
                event = decode_archivable(record.data)
            except ContractError as exc:
                self._pass(pos)
                result.failed.append(failure_of(record, exc))
                continue
            self._append(record, pos, event)
            result.succeeded.append((record, None))
            if self._must_flush_now():
                await self.flush()
        if self.due():
            await self.flush()
        return result

    def _pass(self, pos: SeqPos) -> None:
        # A record that adds nothing to the buffer is durable when nothing before it is pending.
        if not self._buffer.items and self.manifest.pending is None:
            self._durable = pos

    def _append(self, record: StreamRecord, pos: SeqPos, event: Archivable) -> None:
        if not self._buffer.items:
            self._buffer.since = self.clock()
        where = Located(self.stream, self.shard, record.sequence_number, record.sub_sequence_number)
        self._buffer.items.append((where, event))
        self._buffer.positions.append(pos)
        self._buffer.records.append(record)
        self._buffer.bytes += len(record.data)

    def _must_flush_now(self) -> bool:
        pending = self.manifest.pending
        if pending is not None:
            # Redo the half-done flush with its exact boundaries; past them (its last record
            # vanished, e.g. it became poison) flush at once and clean up in `_flush_once`.
            return _key(self._buffer.positions[-1]) >= _key(pending.last)
        return (
            len(self._buffer.items) >= self.hints.max_records
            or self._buffer.bytes >= self.hints.max_bytes
        )

    def due(self) -> bool:
        if not self._buffer.items or self.manifest.pending is not None:
            return False
        return self.clock() - self._buffer.since >= self.hints.max_age_s

    @property
    def buffered(self) -> int:
        return len(self._buffer.items)

    def durable_position(self) -> SeqPos | None:
        """The last position whose record, and every one before it, is in the lake (or skipped)."""
        return self._durable

    # -- flush -----------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Make the buffer durable, retrying transient failures up to `retry_s`.

        With a pending flush not yet reached, nothing is written: writing other boundaries could
        leave the half-done flush's objects overlapping new ones.
        """
        if not self._buffer.items:
            return
        pending = self.manifest.pending
        if pending is not None and _key(self._buffer.positions[-1]) < _key(pending.last):
            return
        deadline = self.clock() + self.retry_s
        attempt = 0
        while True:
            try:
                await self._flush_once()
                return
            except TransientError as exc:
                attempt += 1
                if self.clock() >= deadline:
                    raise LakeUnavailableError(
                        f"flush gave up after {attempt} attempts: {exc}"
                    ) from exc
                delay = random.uniform(0.5, 1.0) * min(5.0, 0.2 * 2 ** (attempt - 1))
                logger.warning(
                    "flush_retry", attempt=attempt, delay_s=round(delay, 3), error=str(exc)
                )
                await asyncio.sleep(delay)

    async def _flush_once(self) -> None:
        first, last = self._buffer.positions[0], self._buffer.positions[-1]
        objects, unstorable = await asyncio.to_thread(
            build_storable, self.shard, self._buffer.items, first, last
        )
        if unstorable:
            await self._reject(unstorable)
        keys = [o.key for o in objects]
        previous = self.manifest.pending
        if previous is None or previous.keys != keys:
            await self._save(
                ShardManifest(
                    committed=self.manifest.committed,
                    pending=Pending(first=first, last=last, keys=keys),
                    flushes=self.manifest.flushes,
                )
            )
        for obj in objects:
            await self.store.put(obj.key, obj.data)
        await self._register(objects)
        if previous is not None:
            stale = set(previous.keys) - set(keys)
            if stale:
                # Only when a pending flush could not be redone as it was: remove what it left.
                logger.warning("pending_flush_changed", stale=len(stale), previous=previous.first)
                for key in sorted(stale):
                    await self.store.delete(key)
        await self._save(ShardManifest(committed=last, flushes=self.manifest.flushes + 1))
        seen = self._seen
        self._durable = seen if seen is not None and _key(seen) > _key(last) else last
        self.stats.flushes += 1
        self.stats.objects += len(objects)
        self.stats.rows += sum(o.rows for o in objects)
        self.stats.bytes_in += self._buffer.bytes
        self.stats.bytes_out += sum(len(o.data) for o in objects)
        self.stats.unstorable += len(unstorable)
        logger.info(
            "flushed",
            objects=len(objects),
            records=len(self._buffer.items),
            first=first[0],
            last=last[0],
        )
        self._buffer.clear()

    async def _reject(self, errors: dict[int, UnstorableError]) -> None:
        """Dead-letter what the lake cannot hold, before the flush that leaves it out commits."""
        failures = [
            RecordFailure(
                self._buffer.records[i], FailureKind.POISON, f"{type(exc).__name__}: {exc}", exc
            )
            for i, exc in sorted(errors.items())
        ]
        for failure in failures:
            logger.warning(
                "unstorable_record",
                sequence=failure.seq,
                sub_sequence=failure.sub_seq,
                error=failure.error,
            )
        if self.reject is None:
            raise errors[min(errors)]
        await self.reject(failures)

    async def _save(self, manifest: ShardManifest) -> None:
        await save_manifest(self.store, self.stream, self.shard, manifest)
        self.manifest = manifest

    async def _register(self, objects: Sequence[LakeObject]) -> None:
        if self.catalog is None:
            return
        by_table: dict[str, set[tuple[str, ...]]] = {}
        for obj in objects:
            by_table.setdefault(obj.table, set()).add(obj.partition)
        for name, partitions in by_table.items():
            await self.catalog.add_partitions(TABLES[name], partitions)
