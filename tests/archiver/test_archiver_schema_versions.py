"""Object keys carry their table's schema version (`keys.py`), so readers know each object's
columns from the listing: no footer is read to bind a view, a lake of one version is one plain
scan, compaction migrates a partition to the current version, and a flush range written again
at a newer version is still one segment (never live twice, never loaded twice).

Objects "from before" are what the archiver wrote before `epoch`: the same builder and encoder,
less the column, under a key with no version in it.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from railpulse_archiver.archive import BufferHints, ShardArchive
from railpulse_archiver.compaction import compact
from railpulse_archiver.generations import list_lake, segment_range
from railpulse_archiver.keys import key_version, segment_id, versioned
from railpulse_archiver.lake import build_objects, encode_parquet, object_key
from railpulse_archiver.query import connect_lake
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.store import LocalStore
from railpulse_archiver.tables import ALERTS, TELEMETRY, Located, Table
from railpulse_archiver.warehouse import (
    PostgresDialect,
    WarehouseLoader,
    connect_warehouse,
    lake_objects,
)
from railpulse_shared.contracts import AcceptedFrame, Reading

START_MS = 1_780_012_800_000  # 2026-05-29T00:00:00Z
DAY = "2026-05-29"
SHARD = "shardId-000000000000"


def _frames(epoch: int, seqs: range, at_ms: int) -> list[AcceptedFrame]:
    return [
        AcceptedFrame(
            train="train-001",
            seq=s,
            epoch=epoch,
            ts_ms=at_ms + i * 1000,
            readings={"bearing_temp_1": Reading(40.0), "bearing_temp_2": Reading(41.0)},
        )
        for i, s in enumerate(seqs)
    ]


def _old(data: bytes) -> bytes:
    """An object's bytes as the archiver wrote them before `epoch` existed."""
    return encode_parquet(pq.read_table(io.BytesIO(data)).drop_columns(["epoch"]), ("train",))


def _write(root: Path, frames: list[AcceptedFrame], first_seq: int, *, old: bool) -> list[str]:
    """One flush of `frames` (`old`: as written before `epoch`); its keys."""
    items = [(Located("telemetry", SHARD, str(first_seq + i), 0), f) for i, f in enumerate(frames)]
    first, last = (str(first_seq), 0), (str(first_seq + len(frames) - 1), 0)
    keys = []
    for obj in build_objects(SHARD, items, first, last):
        key = segment_id(obj.key) if old else obj.key
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_old(obj.data) if old else obj.data)
        keys.append(key)
    return keys


def _view_sql(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'telemetry'").fetchone()
    assert row is not None
    return str(row[0])


def _epochs(con: duckdb.DuckDBPyConnection, where: str = "TRUE") -> list[tuple[int, int]]:
    sql = f"SELECT epoch, count(DISTINCT seq) FROM telemetry WHERE {where} GROUP BY 1 ORDER BY 1"
    return [(int(e), int(n)) for e, n in con.execute(sql).fetchall()]


def test_keys_name_the_schema_version_and_the_segment_ignores_it() -> None:
    key = object_key(TELEMETRY, (DAY, "07"), SHARD, ("12", 0), ("345", 2))
    assert key == f"telemetry/dt={DAY}/hour=07/{SHARD}-12_0-345_2.v1.parquet"
    assert key_version(key) == TELEMETRY.version == 1
    old = segment_id(key)
    assert old == f"telemetry/dt={DAY}/hour=07/{SHARD}-12_0-345_2.parquet"
    assert key_version(old) == 0 and segment_id(old) == old
    assert segment_range(key) == segment_range(old) == (SHARD, ("12", 0), ("345", 2))
    # A table that never gained a column keeps the keys it always had.
    alerts = object_key(ALERTS, (DAY,), SHARD, ("1", 0), ("9", 0))
    assert alerts.endswith(f"{SHARD}-1_0-9_0.parquet") and key_version(alerts) == 0
    assert versioned("telemetry/_compacted/x/g2-ab/part-0", 3).endswith("part-0.v3.parquet")
    assert TELEMETRY.columns_at(0) == TELEMETRY.schema.names[:-1]
    assert TELEMETRY.columns_at(1) == TELEMETRY.schema.names


def test_an_added_column_must_be_the_schemas_last() -> None:
    schema = pa.schema([pa.field("a", pa.int64()), pa.field("b", pa.int64())])
    with pytest.raises(ValueError, match="last"):
        Table("t", schema, ("dt",), ("a",), added=(("a", 0),))


def test_views_learn_columns_from_keys_without_opening_objects(tmp_path: Path) -> None:
    """Old and new objects in hour 00, and in hour 01 an old object that is not Parquet at all:
    binding the views opens none of them but the first of each version (union_by_name would
    read every footer and fail here); a query of hour 00 never touches the broken object, and
    one of hour 01 does (it is read when, and only when, a query needs it)."""
    _write(tmp_path, _frames(0, range(1, 6), START_MS), 100, old=True)
    _write(tmp_path, _frames(7, range(1, 4), START_MS + 60_000), 200, old=False)
    (broken,) = _write(tmp_path, _frames(0, range(9, 10), START_MS + 3_600_000), 300, old=True)
    (tmp_path / broken).write_bytes(b"not a Parquet object")
    con = connect_lake(str(tmp_path))
    view = _view_sql(con)
    assert "union_by_name" not in view and view.count("read_parquet(") == 2
    assert _epochs(con, "hour = 0") == [(0, 5), (7, 3)]
    with pytest.raises(duckdb.Error):
        con.execute("SELECT count(*) FROM telemetry WHERE hour = 1 AND value > 0").fetchall()


def test_compaction_migrates_a_partition_to_the_current_version(tmp_path: Path) -> None:
    """Compacting a mixed partition writes the current version (then the view is one plain
    scan); a folded range written again at another version stays out of the lake, and is
    deleted as stale by the next run."""
    (folded,) = _write(tmp_path, _frames(0, range(1, 6), START_MS), 100, old=True)
    _write(tmp_path, _frames(7, range(1, 4), START_MS + 60_000), 200, old=False)
    store = LocalStore(tmp_path)
    results = asyncio.run(compact(connect_lake(str(tmp_path)), store, str(tmp_path), DAY))
    (done,) = [r for r in results if r.folded]
    assert done.folded == 2 and [key_version(k) for k in done.objects] == [TELEMETRY.version]
    con = connect_lake(str(tmp_path))
    assert _view_sql(con).count("read_parquet(") == 1
    assert _epochs(con) == [(0, 5), (7, 3)]

    # A stale worker writes the folded range again, at the current version this time.
    again = tmp_path / versioned(folded.removesuffix(".parquet"), TELEMETRY.version)
    again.write_bytes((tmp_path / done.objects[0]).read_bytes())
    assert again.name != Path(folded).name and segment_id(str(again)) == str(tmp_path / folded)
    assert list_lake(connect_lake(str(tmp_path)), str(tmp_path)).files("telemetry") == done.objects
    assert _epochs(connect_lake(str(tmp_path))) == [(0, 5), (7, 3)]
    asyncio.run(compact(connect_lake(str(tmp_path)), store, str(tmp_path), DAY, grace_s=0))
    assert not again.exists()


def test_a_flush_redone_by_a_newer_archiver_is_loaded_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """An archiver from before the column crashed mid-flush (its keys pending, its objects up
    and loaded into the warehouse); the newer archiver redoes the flush under versioned keys and
    removes the old ones; the warehouse knows the segments and loads nothing twice."""
    root = tmp_path / "lake"
    records = list(
        fleet_records(trains=2, start_ms=START_MS, duration_s=1800, period_s=60, shards=1)
    )
    store = LocalStore(root)

    async def archive() -> ShardArchive:
        shard = ShardArchive(
            store, stream="telemetry", shard=records[0].shard_id, hints=BufferHints()
        )
        await shard.open()
        await shard.offer(records)
        await shard.flush()
        return shard

    readings = asyncio.run(archive()).stats.rows
    manifest_path = next((root / "_archiver" / "telemetry").glob("*.json"))
    new_keys = sorted(str(p.relative_to(root)) for p in (root / "telemetry").rglob("*.parquet"))
    assert len(new_keys) == 1 and all(key_version(k) == TELEMETRY.version for k in new_keys)
    old_keys = []
    for key in new_keys:  # what the older archiver had written when it crashed
        data = (root / key).read_bytes()
        (root / key).unlink()
        (root / segment_id(key)).write_bytes(_old(data))
        old_keys.append(segment_id(key))
    _, first, last = segment_range(old_keys[0])
    manifest_path.write_bytes(
        msgspec.json.encode({"pending": {"first": first, "last": last, "keys": old_keys}})
    )

    schema = f"wh_versions_{tmp_path.name[-8:].replace('-', '_')}"
    conn = connect_warehouse(postgres_dsn, schema)
    lake = connect_lake(str(root))
    loader = WarehouseLoader(conn, PostgresDialect(lake, str(root)))
    loader.ensure_schema()
    assert loader.load(lake_objects(lake, str(root))).loaded == old_keys

    redo = asyncio.run(archive())
    assert redo.stats.flushes == 1
    found = sorted(str(p.relative_to(root)) for p in (root / "telemetry").rglob("*.parquet"))
    assert found == new_keys  # the old keys were removed by the redo
    lake = connect_lake(str(root))
    row = lake.execute("SELECT count(*), count(DISTINCT (train, seq, channel)) FROM telemetry")
    assert row.fetchone() == (readings, readings)
    report = WarehouseLoader(conn, PostgresDialect(lake, str(root))).load(
        lake_objects(lake, str(root))
    )
    assert report.loaded == [] and report.skipped == len(new_keys)
    row = conn.execute("SELECT count(*), min(epoch), max(epoch) FROM telemetry").fetchone()
    assert row == (readings, 0, 0)  # loaded once, from the objects written before the column
