"""Compaction: small objects become a few files, and every reader sees each row exactly once —
before, after, and *while* a compaction runs (paused between writing its files and committing,
by construction: a hook, not timing). The warehouse never loads a row twice or misses one,
whichever of a row's objects (loose or compacted) a load happened to list."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from railpulse_archiver.archive import BufferHints, ShardArchive
from railpulse_archiver.compaction import compact, pending_keys
from railpulse_archiver.generations import list_lake
from railpulse_archiver.query import connect_lake
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.store import LocalStore
from railpulse_archiver.tables import TELEMETRY
from railpulse_archiver.warehouse import (
    PostgresDialect,
    RedshiftDialect,
    WarehouseLoader,
    connect_warehouse,
    lake_objects,
    segment_filter,
)
from railpulse_shared.batch import StreamRecord

START_MS = 1_780_012_800_000  # 2026-05-29T00:00:00Z
DAY = "2026-05-29"


def _records(start_s: int, duration_s: int, *, late: int = 0) -> list[StreamRecord]:
    """The fleet's records from `start_s` for `duration_s` (a frame a minute per train). The
    simulator numbers every call's records from the same base; `late` > 0 moves them past
    the records of earlier calls (sent later on the stream, measured at these times)."""
    records = fleet_records(
        trains=3, start_ms=START_MS + start_s * 1000, duration_s=duration_s, period_s=60, shards=2
    )
    return [
        msgspec.structs.replace(r, sequence_number=str(int(r.sequence_number) + late * 10**50))
        for r in records
    ]


async def _archive(root: Path, records: list[StreamRecord], every: int = 20) -> int:
    """Archive through the real write path, a flush per `every` records of a shard (small
    objects, as 30-s flushes make them); return the readings written."""
    store = LocalStore(root)
    archives: dict[str, ShardArchive] = {}
    rows = 0
    for record in records:
        archive = archives.get(record.shard_id)
        if archive is None:
            archive = archives[record.shard_id] = ShardArchive(
                store,
                stream="telemetry",
                shard=record.shard_id,
                hints=BufferHints(max_records=every, max_age_s=1e9),
            )
            await archive.open()
        await archive.offer([record])
    for archive in archives.values():
        await archive.flush()
        rows += archive.stats.rows
    return rows


def _counts(root: Path) -> tuple[int, int]:
    """(rows, distinct readings) of the lake as `railpulse query` sees it."""
    con = connect_lake(str(root))
    row = con.execute(
        "SELECT count(*), count(DISTINCT (train, seq, channel)) FROM telemetry"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _loose_per_partition(root: Path) -> int:
    listing = list_lake(connect_lake(str(root)), str(root))
    per: dict[str, int] = {}
    for key in listing.files("telemetry"):
        part = key.split("/dt=", 1)[1].rsplit("/", 1 if "/_compacted/" not in key else 2)[0]
        per[part] = per.get(part, 0) + 1
    return max(per.values())


def test_a_read_during_compaction_sees_every_row_exactly_once(tmp_path: Path) -> None:
    """Paused after writing the new generation and before committing, a reader (fresh views, and
    views opened before the pause) sees every row once; after the commit too; and views opened
    before the commit still read every row once after it (superseded objects outlive readers)."""
    root = tmp_path / "lake"
    readings = asyncio.run(_archive(root, _records(0, 3 * 3600), every=8))
    assert _counts(root) == (readings, readings)
    assert _loose_per_partition(root) > 10
    before = connect_lake(str(root))
    seen: list[tuple[int, int]] = []

    async def pause(partition: tuple[str, ...], keys: list[str]) -> None:
        assert all((root / k).exists() for k in keys)  # the new files are there, not committed
        seen.append(_counts(root))

    results = asyncio.run(
        compact(
            connect_lake(str(root)),
            LocalStore(root),
            str(root),
            DAY,
            tables=["telemetry"],
            before_commit=pause,
        )
    )
    assert len(results) == 3 and all(r.folded > 0 and len(r.objects) == 1 for r in results)
    assert seen == [(readings, readings)] * 3
    assert _counts(root) == (readings, readings)
    assert _loose_per_partition(root) == 1
    row = before.execute("SELECT count(*) FROM telemetry").fetchone()
    assert row == (readings,)


def test_late_objects_stay_live_and_are_folded_by_the_next_run(tmp_path: Path) -> None:
    """A flush into an hour already compacted stays loose and live; the next run folds it into
    a new generation; objects superseded longer ago than the grace period are deleted."""
    root = tmp_path / "lake"
    first = asyncio.run(_archive(root, _records(0, 3600)))
    store = LocalStore(root)
    asyncio.run(compact(connect_lake(str(root)), store, str(root), DAY, tables=["telemetry"]))
    late = asyncio.run(_archive(root, _records(1800, 600, late=1)))  # same hour: a backfill, say
    assert _counts(root) == (first + late, first)  # the backfill repeats readings by design
    results = asyncio.run(
        compact(connect_lake(str(root)), store, str(root), DAY, tables=["telemetry"], grace_s=0)
    )
    assert [r.folded for r in results] == [2]  # one flush per shard
    assert _counts(root) == (first + late, first)
    assert results[0].deleted > 10  # the first run's loose objects and its generation
    loose = list((root / "telemetry" / f"dt={DAY}" / "hour=00").glob("*.parquet"))
    assert loose == []


def test_a_pending_flush_is_not_folded(tmp_path: Path) -> None:
    """Objects of a flush a shard manifest still calls pending may be redone: left loose."""
    root = tmp_path / "lake"
    asyncio.run(_archive(root, _records(0, 1200)))
    manifest = next((root / "_archiver" / "telemetry").glob("*.json"))
    state = msgspec.json.decode(manifest.read_bytes())
    some = sorted((root / "telemetry" / f"dt={DAY}" / "hour=00").glob(f"{manifest.stem}-*"))[-1]
    key = str(some.relative_to(root))
    state["pending"] = {"first": ["1", 0], "last": ["2", 0], "keys": [key]}
    manifest.write_bytes(msgspec.json.encode(state))
    assert pending_keys(connect_lake(str(root)), str(root)) == {key}
    asyncio.run(
        compact(connect_lake(str(root)), LocalStore(root), str(root), DAY, tables=["telemetry"])
    )
    listing = list_lake(connect_lake(str(root)), str(root))
    assert listing.loose["telemetry"] == [key]


def _warehouse_counts(conn: Any) -> tuple[int, int]:
    row = conn.execute(
        "SELECT count(*), count(DISTINCT (train, seq, channel, source_seq)) FROM telemetry"
    ).fetchone()
    return int(row[0]), int(row[1])


def test_the_warehouse_loads_every_row_once_across_compactions(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Loads before, during and after compactions, with loose objects loaded and then folded,
    folded before any load, and a listing taken before a commit loaded after it."""
    root = tmp_path / "lake"
    store = LocalStore(root)
    conn = connect_warehouse(postgres_dsn, schema=f"wh_compact_{tmp_path.name[-8:]}".lower())

    def load(objects: list[Any] | None = None) -> Any:
        duck = connect_lake(str(root))
        loader = WarehouseLoader(conn, PostgresDialect(duck, str(root)))
        loader.ensure_schema()
        return loader.load(objects if objects is not None else lake_objects(duck, str(root)))

    total = asyncio.run(_archive(root, _records(0, 1800)))
    load()  # loose objects loaded
    total += asyncio.run(_archive(root, _records(1800, 1800, late=1)))  # more loose, not loaded
    listed_before: list[Any] = []

    async def pause(partition: tuple[str, ...], keys: list[str]) -> None:
        listed_before.extend(lake_objects(connect_lake(str(root)), str(root)))

    asyncio.run(
        compact(
            connect_lake(str(root)),
            store,
            str(root),
            DAY,
            tables=["telemetry"],
            before_commit=pause,
        )
    )
    report = load(listed_before)  # a load that listed before the commit, loading after it
    assert report.loaded and report.set_aside == {}
    report = load()  # the generation: every segment loaded already
    assert report.loaded == [] and report.set_aside == {}
    assert _warehouse_counts(conn) == (total, total)

    total += asyncio.run(_archive(root, _records(3600, 1800, late=2)))  # the next hour, and
    total += asyncio.run(_archive(root, _records(600, 600, late=3)))  # late flushes into hour 00
    asyncio.run(compact(connect_lake(str(root)), store, str(root), DAY, tables=["telemetry"]))
    report = load()  # hour 01 never loaded; hour 00's generation 2 holds 2 new segments
    assert len(report.loaded) == 2 and report.set_aside == {}
    assert _warehouse_counts(conn) == (total, total)
    assert load().loaded == []
    ledger = conn.execute(
        "SELECT sum(row_count) FROM archive_ledger WHERE table_name = 'telemetry'"
    ).fetchone()
    assert ledger == (total,)


def test_segment_filter_picks_a_segments_rows_by_source_position() -> None:
    key = f"telemetry/dt={DAY}/hour=00/shardId-000000000001-{'9' * 55}_0-{'1' + '0' * 55}_3.parquet"
    where = segment_filter([key])
    assert "source_shard = 'shardId-000000000001'" in where
    assert f"'{'0' * 9}{'9' * 55}{'0' * 10}' AND '{'0' * 8}1{'0' * 55}{'0' * 9}3'" in where
    with pytest.raises(Exception, match="not a lake object key"):
        segment_filter(["telemetry/dt=x/hour=00/shard'--1_0-2_0.parquet"])
    statements = RedshiftDialect("lake", "arn:role").rows_statements(TELEMETRY, ["a", "b"], where)
    assert statements[0] == "CREATE TEMP TABLE telemetry_stage (LIKE telemetry)"
    assert statements[1].startswith("COPY telemetry_stage FROM 's3://lake/a'")
    assert statements[3] == f"INSERT INTO telemetry SELECT * FROM telemetry_stage WHERE {where}"
