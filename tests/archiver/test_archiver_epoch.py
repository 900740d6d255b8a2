"""`telemetry.epoch`: a restarted counter's frames stay apart, and objects older than the column
still read (as epoch 0) everywhere the lake is read: the views, the compaction, the warehouse.

Objects "from before" are written with the schema of their day (the lake's schema less `epoch`),
byte for byte what the archiver wrote then: the same builder, the same encoder.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import duckdb
import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from railpulse_archiver.compaction import compact
from railpulse_archiver.keys import key_version, segment_id
from railpulse_archiver.lake import build_objects, encode_parquet
from railpulse_archiver.query import connect_lake
from railpulse_archiver.sql_source import LakeSource
from railpulse_archiver.store import LocalStore
from railpulse_archiver.tables import TABLES, TELEMETRY, Located
from railpulse_archiver.views import DBT_PROJECT, view_select
from railpulse_archiver.warehouse import (
    PostgresDialect,
    WarehouseLoader,
    connect_warehouse,
    ddl,
    lake_objects,
)
from railpulse_shared.contracts import AcceptedFrame, Reading

START_MS = 1_780_012_800_000  # 2026-05-29T00:00:00Z
SHARD = "shardId-000000000000"


def _frames(train: str, epoch: int, seqs: range, at_ms: int) -> list[AcceptedFrame]:
    return [
        AcceptedFrame(
            train=train,
            seq=s,
            epoch=epoch,
            ts_ms=at_ms + i * 1000,
            readings={"bearing_temp_1": Reading(40.0), "bearing_temp_2": Reading(41.0)},
        )
        for i, s in enumerate(seqs)
    ]


def _write(root: Path, frames: list[AcceptedFrame], first_seq: int, *, old: bool) -> None:
    """One flush of `frames` into the lake at `root` (`old`: as written before `epoch` existed)."""
    items = [(Located("telemetry", SHARD, str(first_seq + i), 0), f) for i, f in enumerate(frames)]
    first, last = (str(first_seq), 0), (str(first_seq + len(frames) - 1), 0)
    for obj in build_objects(SHARD, items, first, last):
        data, key = obj.data, obj.key
        if old:
            table = pq.read_table(io.BytesIO(data)).drop_columns(["epoch"])
            data = encode_parquet(table, TELEMETRY.sort_by)
            key = segment_id(key)  # no schema version in the key then
            assert key_version(key) == 0 and key_version(obj.key) == TELEMETRY.version
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _epochs(root: Path) -> list[tuple[str, int, int]]:
    con = connect_lake(str(root))
    rows = con.execute(
        "SELECT train, epoch, count(DISTINCT seq) FROM telemetry GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [(str(t), int(e), int(n)) for t, e, n in rows]


def test_objects_from_before_the_column_read_as_epoch_0_beside_new_ones(tmp_path: Path) -> None:
    only_old = tmp_path / "old"
    _write(only_old, _frames("train-001", 0, range(1, 6), START_MS), 100, old=True)
    # A lake of nothing but objects from before: the column is there, 0.
    assert _epochs(only_old) == [("train-001", 0, 5)]
    con = connect_lake(str(only_old))
    assert con.execute("SELECT typeof(epoch) FROM telemetry LIMIT 1").fetchone() == ("BIGINT",)

    mixed = tmp_path / "mixed"
    _write(mixed, _frames("train-001", 0, range(1, 6), START_MS), 100, old=True)
    # The train's storage is replaced: its counter starts again at 1 under a new epoch.
    _write(mixed, _frames("train-001", 7001, range(1, 4), START_MS + 60_000), 200, old=False)
    assert _epochs(mixed) == [("train-001", 0, 5), ("train-001", 7001, 3)]
    # Every column of the lake's schema, in order, then the partition columns.
    columns = [r[0] for r in connect_lake(str(mixed)).execute("DESCRIBE telemetry").fetchall()]
    assert columns == [*TELEMETRY.schema.names, "dt", "hour"]


def test_data_completeness_counts_a_restarted_counter_as_its_own(tmp_path: Path) -> None:
    """Seq 1..5 under epoch 11, then 1..3 and 5..6 under epoch 12: one gap (epoch 12's seq 4).
    By (train, seq) alone the restart hides it: 1, 1, 2, 2, 3, 3, 4, 5, 5, 6 has no jump."""
    _write(tmp_path, _frames("train-002", 11, range(1, 6), START_MS), 100, old=False)
    _write(tmp_path, _frames("train-002", 12, range(1, 4), START_MS + 10_000), 200, old=False)
    _write(tmp_path, _frames("train-002", 12, range(5, 7), START_MS + 20_000), 300, old=False)
    source = LakeSource(connect_lake(str(tmp_path)), with_views=True)
    row = source.query(
        "SELECT frames_received, frames_missing, gaps FROM data_completeness"
    ).to_pylist()
    # 5 + 3 + 2 frames; the second counter skipped seq 4: one gap of one frame.
    assert row == [{"frames_received": 10, "frames_missing": 1, "gaps": 1}]


def test_compaction_of_old_and_new_objects_writes_the_whole_schema(tmp_path: Path) -> None:
    _write(tmp_path, _frames("train-003", 0, range(1, 4), START_MS), 100, old=True)
    _write(tmp_path, _frames("train-003", 9, range(1, 3), START_MS + 5000), 200, old=False)
    con = connect_lake(str(tmp_path))
    results = asyncio.run(compact(con, LocalStore(tmp_path), str(tmp_path), "2026-05-29"))
    (done,) = [r for r in results if r.folded]
    assert done.folded == 2
    (key,) = done.objects
    generation = pq.read_table(tmp_path / key)
    assert generation.schema.names == TELEMETRY.schema.names
    got = sorted(zip(generation["epoch"].to_pylist(), generation["seq"].to_pylist(), strict=True))
    assert sorted(set(got)) == [(0, 1), (0, 2), (0, 3), (9, 1), (9, 2)]
    assert _epochs(tmp_path) == [("train-003", 0, 3), ("train-003", 9, 2)]


def test_the_warehouse_gets_the_column_and_loads_old_objects_as_epoch_0(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A warehouse whose telemetry table predates the column: the load adds it (its rows read
    0), and loads objects from before (0) and after (their epoch)."""
    schema = f"wh_epoch_{tmp_path.name[-8:].replace('-', '_')}"
    conn = connect_warehouse(postgres_dsn, schema)
    before = pa.schema([f for f in TELEMETRY.schema if f.name != "epoch"])
    old_table = ddl(TELEMETRY).replace(",\n    epoch BIGINT DEFAULT 0", "")
    assert "epoch" not in old_table and len(before) == len(TELEMETRY.schema) - 1
    conn.execute(old_table.encode())
    conn.execute(
        "INSERT INTO telemetry (train, seq, ts, channel, value, quality) "
        "VALUES ('train-000', 1, now(), 'bearing_temp_1', 1.0, 'good')"
    )
    _write(tmp_path, _frames("train-004", 0, range(1, 4), START_MS), 100, old=True)
    _write(tmp_path, _frames("train-004", 5, range(1, 3), START_MS + 5000), 200, old=False)
    duck = connect_lake(str(tmp_path))
    loader = WarehouseLoader(conn, PostgresDialect(duck, str(tmp_path)))
    loader.ensure_schema()
    report = loader.load(lake_objects(duck, str(tmp_path)))
    assert len(report.loaded) == 2 and not report.set_aside
    rows = conn.execute(
        "SELECT train, epoch, count(DISTINCT seq) FROM telemetry GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert rows == [("train-000", 0, 1), ("train-004", 0, 3), ("train-004", 5, 2)]


def _dbt_source(table: str, lake: Path) -> str:
    """The relation dbt-duckdb reads for `source('lake', table)`: the table's (else the
    source's) `external_location`, its Jinja rendered, then `.format(name=...)`."""
    (source,) = yaml.safe_load((DBT_PROJECT / "models" / "sources.yml").read_text())["sources"]
    (spec,) = [t for t in source["tables"] if t["name"] == table]
    template = (spec.get("meta") or {}).get("external_location") or source["meta"][
        "external_location"
    ]
    env = {"RAILPULSE_LAKE": str(lake)}
    rendered = jinja2.Template(template).render(env_var=lambda k, default="": env.get(k, default))
    return str(rendered).format_map({"name": table})


@pytest.mark.parametrize("old", [True, False])
def test_dbt_reads_the_column_whatever_the_objects_age(tmp_path: Path, old: bool) -> None:
    """dbt-duckdb reads the lake by glob with union_by_name, which leaves out a column no object
    has: over a lake of objects from before `epoch` alone, its source still has the column."""
    _write(tmp_path, _frames("train-005", 0, range(1, 4), START_MS), 100, old=old)
    _write(tmp_path, _frames("train-005", 0, range(6, 8), START_MS + 5000), 200, old=old)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW telemetry AS SELECT * FROM {_dbt_source('telemetry', tmp_path)}")
    names = [r[0] for r in con.execute("DESCRIBE telemetry").fetchall()]
    assert set(TELEMETRY.schema.names) <= set(names)
    rows = con.execute(
        f"SELECT frames_received, frames_missing, gaps FROM ({view_select('data_completeness')})"
    ).fetchall()
    assert rows == [(5, 2, 1)]
    assert con.execute(f"SELECT count(*) FROM ({view_select('train_channel_hourly')})").fetchone()
    # Every table with an added column gives it to dbt (the others read as they are).
    for name, table in TABLES.items():
        if table.added:
            assert all(c in _dbt_source(name, tmp_path) for c, _ in table.added), name
