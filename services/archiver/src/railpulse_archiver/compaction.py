"""Compaction: rewrite a partition's small objects into files of a target size, atomically.

One partition at a time (`compact_partition`):

1. read its state (`generations.PartitionState`) and list its loose objects, leaving out those of
   a flush still `pending` in a shard manifest (a half-done flush may yet be redone);
2. read the live objects (the current generation and the loose ones) sorted by the table's sort
   order, and write them as a new generation of files of about `target_bytes` each, under a
   prefix no reader lists yet;
3. commit: one PUT of the partition's state naming the new generation, the loose keys folded in
   and the objects superseded. That PUT is the instant readers switch (see `generations.py`);
4. point the Glue partition at the generation's prefix (Athena and Spectrum read a partition's
   location: they switch on that one UpdatePartition call, from the old objects, which are all
   still there, to the new ones);
5. delete what earlier commits superseded more than `grace_s` ago (never what this one did: a
   reader that listed before the commit may still be reading it).

A loose object written after step 1 stays loose and live, and is folded by the next run. Runs of
one partition are meant to be serial (one scheduled task); two at once still lose nothing and
duplicate nothing (each generation gets a fresh token, and the last commit names a generation
built from the state it read plus loose objects that state did not fold), but the loser's files
are left unreferenced.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from railpulse_archiver.catalog import GlueCatalog
from railpulse_archiver.errors import ManifestConflictError
from railpulse_archiver.generations import (
    STATE_ROOT,
    Garbage,
    PartitionState,
    generation_prefix,
    partition_of_key,
    partition_path,
    state_key,
)
from railpulse_archiver.keys import segment_id, versioned
from railpulse_archiver.lake import ZSTD_LEVEL
from railpulse_archiver.manifest import ShardManifest
from railpulse_archiver.scan import read_sql
from railpulse_archiver.store import ObjectStore
from railpulse_archiver.tables import TABLES, Table

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_TARGET_BYTES",
    "CompactionResult",
    "compact",
    "compact_partition",
    "partitions_of_day",
]

logger = structlog.get_logger()

DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
DEFAULT_GRACE_S = 3600.0
"""How long superseded objects stay readable: longer than any query or load runs."""
_BATCH_ROWS = 1_000_000

BeforeCommit = Callable[[tuple[str, ...], list[str]], Awaitable[None]]
"""Called with the partition and the new generation's keys, after they are written and before
the commit (tests pause here to read the lake mid-compaction)."""


@dataclass(slots=True)
class CompactionResult:
    table: str
    partition: tuple[str, ...]
    folded: int = 0
    """Loose objects folded into the new generation (0: nothing to do)."""
    sources: int = 0
    objects: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    deleted: int = 0


def _glob(con: duckdb.DuckDBPyConnection, pattern: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute("SELECT file FROM glob(?) ORDER BY file", [pattern]).fetchall()
    ]


def pending_keys(con: duckdb.DuckDBPyConnection, root: str) -> set[str]:
    """Keys of flushes not committed yet, from every shard manifest (`_archiver/<stream>/*.json`)."""
    pattern = f"{root.rstrip('/')}/_archiver/*/*.json"
    if not _glob(con, pattern):
        return set()
    keys: set[str] = set()
    for (content,) in con.execute("SELECT content FROM read_text(?)", [pattern]).fetchall():
        manifest = msgspec.json.decode(content, type=ShardManifest)
        if manifest.pending is not None:
            keys.update(manifest.pending.keys)
    return keys


def partitions_of_day(
    con: duckdb.DuckDBPyConnection, root: str, table: Table, day: str, hour: str | None = None
) -> list[tuple[str, ...]]:
    """The partitions of `table` on `day` (one hour of it with `hour`) that hold any object."""
    base = root.rstrip("/")
    found: set[tuple[str, ...]] = set()
    if table.partition_keys == ("dt", "hour"):
        hours = f"hour={hour}" if hour is not None else "hour=*"
        patterns = [
            f"{base}/{table.name}/dt={day}/{hours}/*.parquet",
            f"{base}/{STATE_ROOT}/{table.name}/dt={day}/{hours}.json",
        ]
    else:
        patterns = [
            f"{base}/{table.name}/dt={day}/*.parquet",
            f"{base}/{STATE_ROOT}/{table.name}/dt={day}.json",
        ]
    for pattern in patterns:
        for file in _glob(con, pattern):
            rel = file.removeprefix(base + "/")
            if rel.startswith(STATE_ROOT + "/"):
                rel = rel.removeprefix(STATE_ROOT + "/").removesuffix(".json") + "/x"
            found.add(partition_of_key(table, rel))
    return sorted(found)


async def _load_state(
    store: ObjectStore, table: Table, partition: tuple[str, ...]
) -> PartitionState:
    data = await store.get(state_key(table, partition))
    if data is None:
        return PartitionState()
    try:
        return msgspec.json.decode(data, type=PartitionState)
    except msgspec.DecodeError as exc:
        raise ManifestConflictError(f"state of {table.name}/{partition}: {exc}") from exc


class _Files:
    """Parquet files of about `target` bytes each, cut between row groups."""

    def __init__(self, schema: pa.Schema, target: int) -> None:
        self.schema = schema
        self.target = target
        self.done: list[tuple[bytes, int]] = []
        self._sink: io.BytesIO | None = None
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def write(self, part: pa.Table) -> None:
        if self._writer is None:
            self._sink = io.BytesIO()
            self._writer = pq.ParquetWriter(
                self._sink,
                self.schema,
                compression="zstd",
                compression_level=ZSTD_LEVEL,
                use_dictionary=True,
                write_statistics=True,
            )
        self._writer.write_table(part, row_group_size=_BATCH_ROWS)
        self._rows += part.num_rows
        assert self._sink is not None
        if self._sink.tell() >= self.target:
            self.close()

    def close(self) -> None:
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        self.done.append((self._sink.getvalue(), self._rows))
        self._writer, self._sink, self._rows = None, None, 0


def _rewrite(
    con: duckdb.DuckDBPyConnection, root: str, table: Table, sources: list[str], target_bytes: int
) -> list[tuple[bytes, int]]:
    """The sources' rows, sorted, as Parquet files of about `target_bytes` (and their rows)."""
    base = root.rstrip("/")
    order = ", ".join(f'"{n}"' for n in table.sort_by)
    # The table's columns whatever the sources' age: a generation always has the whole schema.
    select = read_sql(table, [f"{base}/{k}" for k in sources])
    reader = con.execute(f"{select} ORDER BY {order}").fetch_record_batch(_BATCH_ROWS)
    files = _Files(table.schema, target_bytes)
    for batch in reader:
        # Back to the lake's own schema (DuckDB hands timestamps back in microseconds).
        files.write(pa.Table.from_batches([batch]).cast(table.schema))
    files.close()
    return files.done


async def compact_partition(
    con: duckdb.DuckDBPyConnection,
    store: ObjectStore,
    root: str,
    table: Table,
    partition: tuple[str, ...],
    *,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    grace_s: float = DEFAULT_GRACE_S,
    catalog: GlueCatalog | None = None,
    before_commit: BeforeCommit | None = None,
    now: Callable[[], float] = time.time,
    pending: set[str] | None = None,
) -> CompactionResult:
    """Fold the partition's loose objects (and its current generation) into a new generation."""
    result = CompactionResult(table.name, partition)
    base = root.rstrip("/")
    state = await _load_state(store, table, partition)
    if pending is None:
        pending = await asyncio.to_thread(pending_keys, con, root)
    listed = await asyncio.to_thread(
        _glob, con, f"{base}/{table.name}/{partition_path(table, partition)}/*.parquet"
    )
    # Segments, not keys (`keys.segment_id`): a range folded or pending under one schema
    # version is the same range under another.
    replaced = {segment_id(k) for k in state.replaced}
    waiting = {segment_id(k) for k in pending}
    found = [f.removeprefix(base + "/") for f in listed]
    loose = [k for k in found if segment_id(k) not in replaced]
    fold = [k for k in loose if segment_id(k) not in waiting]
    stale = [k for k in found if segment_id(k) in replaced]
    if fold:
        sources = [*state.objects, *fold]
        files = await asyncio.to_thread(_rewrite, con, root, table, sources, target_bytes)
        generation = state.generation + 1
        unit = generation_prefix(table, partition, generation, secrets.token_hex(4))
        # Written at the current schema version: compacting a partition migrates it.
        keys = [versioned(f"{unit}/part-{i}", table.version) for i in range(len(files))]
        for key, (data, rows) in zip(keys, files, strict=True):
            await store.put(key, data)
            result.rows += rows
            result.bytes += len(data)
        if before_commit is not None:
            await before_commit(partition, keys)
        now_ms = int(now() * 1000)
        state = PartitionState(
            generation=generation,
            unit=unit,
            objects=keys,
            segments=[*state.segments, *fold],
            replaced=[*state.replaced, *fold],
            garbage=[*state.garbage, *(Garbage(key=k, since_ms=now_ms) for k in sources)],
            committed_ms=now_ms,
        )
        await store.put(state_key(table, partition), msgspec.json.encode(state))
        if catalog is not None:
            await catalog.set_partition_location(table, partition, f"{unit}/")
        result.folded, result.sources, result.objects = len(fold), len(sources), keys
        logger.info(
            "partition_compacted",
            table=table.name,
            partition="/".join(partition),
            folded=len(fold),
            objects=len(keys),
            rows=result.rows,
        )
    result.deleted = await _collect(store, table, partition, state, stale, now() - grace_s)
    return result


async def _collect(
    store: ObjectStore,
    table: Table,
    partition: tuple[str, ...],
    state: PartitionState,
    stale: list[str],
    before_s: float,
) -> int:
    """Delete what commits superseded before `before_s`, and folded keys written again since."""
    cutoff = int(before_s * 1000)
    due = [g for g in state.garbage if g.since_ms <= cutoff]
    keep = [g for g in state.garbage if g.since_ms > cutoff]
    waiting = {g.key for g in keep}
    gone = sorted({g.key for g in due} | {k for k in stale if k not in waiting})
    if not gone:
        return 0
    # The state first: a crash after it leaves objects nobody lists, never a listed one missing.
    await store.put(
        state_key(table, partition),
        msgspec.json.encode(msgspec.structs.replace(state, garbage=keep)),
    )
    for key in gone:
        await store.delete(key)
    return len(gone)


async def compact(
    con: duckdb.DuckDBPyConnection,
    store: ObjectStore,
    root: str,
    day: str,
    *,
    hour: str | None = None,
    tables: list[str] | None = None,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    grace_s: float = DEFAULT_GRACE_S,
    catalog: GlueCatalog | None = None,
    before_commit: BeforeCommit | None = None,
) -> list[CompactionResult]:
    """Compact every partition of `day` (or of one `hour` of it) of the given tables."""
    pending = await asyncio.to_thread(pending_keys, con, root)
    results = []
    for name in tables or list(TABLES):
        table = TABLES[name]
        if hour is not None and "hour" not in table.partition_keys:
            continue
        for partition in await asyncio.to_thread(partitions_of_day, con, root, table, day, hour):
            results.append(
                await compact_partition(
                    con,
                    store,
                    root,
                    table,
                    partition,
                    target_bytes=target_bytes,
                    grace_s=grace_s,
                    catalog=catalog,
                    before_commit=before_commit,
                    pending=pending,
                )
            )
    return results
