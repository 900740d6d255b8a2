"""Warehouse loads are idempotent through the ledger; the engineers' views compute what they say."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pyarrow.parquet as pq
import pytest
from archiver_events import event_records
from archiver_fixtures import fresh_settings
from archiver_lakebuild import archive

from railpulse_archiver.query import connect_lake
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records, train_channels
from railpulse_archiver.tables import ALERTS, REJECTS, TELEMETRY
from railpulse_archiver.warehouse import (
    PostgresDialect,
    RedshiftDialect,
    WarehouseLoader,
    connect_warehouse,
    ddl,
    lake_objects,
)
from railpulse_cli.main import main as cli

START_MS = 1_780_000_000_000


class LostConnection(psycopg.OperationalError):
    pass


class FailingDialect(PostgresDialect):
    """Fails the n-th object after its rows went in, before the transaction commits."""

    def __init__(self, inner: PostgresDialect, fail_at: int) -> None:
        super().__init__(inner.lake, inner.root)
        self.calls = 0
        self.fail_at = fail_at

    def copy(self, cur: psycopg.Cursor[Any], table: Any, key: str) -> int:
        rows = super().copy(cur, table, key)
        self.calls += 1
        if self.calls == self.fail_at:
            raise LostConnection("server closed the connection unexpectedly")
        return rows


@pytest.fixture(scope="module")
def lake(moto_endpoint: str) -> Iterator[tuple[ArchiverSettings, int, int]]:
    settings = fresh_settings(moto_endpoint)
    frames = list(
        fleet_records(trains=3, start_ms=START_MS, duration_s=30 * 3600, period_s=120, shards=1)
    )
    # A gap: train-002 loses 10 frames (its seq 100..109) in transit.
    kept = [
        r
        for r in frames
        if not (b'"train-002"' in r.data and 100 <= msgspec.json.decode(r.data)["seq"] < 110)
    ]
    archive(msgspec.structs.replace(settings, buffer_max_records=400), kept, "telemetry")
    archive(
        msgspec.structs.replace(settings, archiver_stream="events"),
        event_records(START_MS),
        "events",
    )
    readings = sum(len(msgspec.json.decode(r.data)["readings"]) for r in kept)
    yield settings, readings, len(kept)


def test_the_loader_role_has_no_privileges_beyond_its_database(postgres_dsn: str) -> None:
    """The warehouse is loaded by the role services get: password required, not superuser, no
    CREATEDB or CREATEROLE, no way into another database (the stack's own set-up)."""
    with psycopg.connect(postgres_dsn) as conn:
        role = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert role == ("railpulse", False, False, False, False, False)
    assert owner == ("railpulse",)
    info = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    for refused in (
        {**info, "password": ""},
        {**info, "password": "railpulse"},
        {**info, "dbname": "postgres"},
        {**info, "user": "railpulse_admin", "dbname": "postgres"},
    ):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(psycopg.conninfo.make_conninfo(**refused), connect_timeout=5)


def test_retried_load_loads_no_row_twice(
    lake: tuple[ArchiverSettings, int, int], postgres_dsn: str
) -> None:
    settings, readings, _ = lake
    root = f"s3://{settings.bucket_lake}"
    duck = connect_lake(root, endpoint=settings.aws_endpoint_url)
    objects = lake_objects(duck, root)
    assert len(objects) > 5
    conn = connect_warehouse(postgres_dsn, schema=settings.warehouse_schema)
    plain = PostgresDialect(duck, root)

    failing = WarehouseLoader(conn, FailingDialect(plain, fail_at=4))
    failing.ensure_schema()
    with pytest.raises(Exception, match="closed the connection"):
        failing.load(objects)
    assert len(failing.loaded_keys()) == 3  # the 4th rolled back with its rows

    retry = WarehouseLoader(conn, plain)
    report = retry.load(objects)
    assert report.skipped == 3 and len(report.loaded) == len(objects) - 3
    again = retry.load(objects)  # e.g. the client never heard the commit and retries everything
    assert again.loaded == [] and again.skipped == len(objects)

    total, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT (train, seq, channel)) FROM telemetry"
    ).fetchone() or (0, 0)
    assert total == distinct == readings
    ledger_rows = conn.execute(
        "SELECT sum(row_count) FROM archive_ledger WHERE table_name = 'telemetry'"
    ).fetchone()
    assert ledger_rows == (readings,)

    # The views: an alarm acknowledged after 90 s and cleared after 10 min; train-002's gap.
    lifecycle = conn.execute(
        "SELECT train, category, seconds_to_acknowledge, seconds_to_clear FROM alert_lifecycle ORDER BY train"
    ).fetchall()
    assert [(t, float(a), float(c)) for t, _, a, c in lifecycle] == [
        (f"train-00{i}", 90.0, 600.0) for i in (1, 2, 3)
    ]
    assert {row[1] for row in lifecycle} == {"limit", "model"}
    gaps = conn.execute(
        "SELECT train, sum(frames_missing), sum(gaps), max(longest_gap_frames) FROM data_completeness GROUP BY train ORDER BY train"
    ).fetchall()
    assert gaps == [("train-001", 0, 0, 0), ("train-002", 10, 1, 10), ("train-003", 0, 0, 0)]
    hourly = conn.execute(
        "SELECT sum(readings) FROM train_channel_hourly WHERE train = 'train-001'"
    ).fetchone()
    assert hourly is not None and hourly[0] > 0


def test_redshift_dialect_copies_parquet_from_the_lake() -> None:
    assert "message VARCHAR(65535)" in ddl(ALERTS, RedshiftDialect.text_type)
    statement = RedshiftDialect("railpulse-lake", "arn:aws:iam::123456789012:role/wh").statement(
        TELEMETRY, "telemetry/dt=2026-05-28/hour=20/shardId-000000000000-1_0-9_0.parquet"
    )
    # FILLRECORD: an object whose key names no schema version predates `epoch` and lacks it.
    assert statement == (
        "COPY telemetry FROM 's3://railpulse-lake/telemetry/dt=2026-05-28/hour=20/"
        "shardId-000000000000-1_0-9_0.parquet' IAM_ROLE 'arn:aws:iam::123456789012:role/wh' FORMAT AS PARQUET"
        " FILLRECORD"
    )
    current = RedshiftDialect("railpulse-lake", "arn:aws:iam::123456789012:role/wh").statement(
        TELEMETRY, "telemetry/dt=2026-05-28/hour=20/shardId-000000000000-1_0-9_0.v1.parquet"
    )
    assert current.endswith("1_0-9_0.v1.parquet' IAM_ROLE 'arn:aws:iam::123456789012:role/wh' FORMAT AS PARQUET")
    alerts = RedshiftDialect("railpulse-lake", "arn:aws:iam::123456789012:role/wh").statement(
        ALERTS, "alerts/dt=2026-05-28/shardId-000000000000-1_0-9_0.parquet"
    )
    assert alerts.endswith("FORMAT AS PARQUET")
    rejects = ddl(REJECTS, RedshiftDialect.text_type, RedshiftDialect.binary_type)
    assert "raw VARBYTE(1024000)" in rejects and "reason VARCHAR(65535) NOT NULL" in rejects
    assert "epoch BIGINT DEFAULT 0" in ddl(TELEMETRY, RedshiftDialect.text_type)


def test_sharing_commands(
    lake: tuple[ArchiverSettings, int, int],
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, readings, _ = lake
    monkeypatch.setenv("AWS_ENDPOINT_URL", settings.aws_endpoint_url or "")
    monkeypatch.setenv("RAILPULSE_BUCKET_LAKE", settings.bucket_lake)
    monkeypatch.setenv("RAILPULSE_WAREHOUSE_DSN", postgres_dsn)
    monkeypatch.setenv("RAILPULSE_WAREHOUSE_SCHEMA", "cli_" + settings.warehouse_schema)

    assert cli(["load"]) == 0
    assert cli(["load"]) == 0  # a second run loads nothing
    assert "loaded 0 objects" in capsys.readouterr().err

    assert (
        cli(["query", "--warehouse", "--format", "csv", "SELECT count(*) AS n FROM telemetry"]) == 0
    )
    assert capsys.readouterr().out.split() == ["n", str(readings)]
    sql = "SELECT count(*) AS n FROM telemetry WHERE dt = '2026-05-29'"
    assert cli(["query", "--explain", sql]) == 0
    captured = capsys.readouterr()
    assert "objects read:" in captured.err and "(1 rows)" in captured.out

    out = tmp_path / "train-001.parquet"
    assert (
        cli(
            [
                "export",
                "--train",
                "train-001",
                "--from",
                "2026-05-29",
                "--to",
                "2026-05-29T06:00",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    exported = pq.read_table(out)
    assert set(exported.column("train").to_pylist()) == {"train-001"}
    assert exported.num_rows == 6 * 30 * len(train_channels())  # 6 h, a frame per 2 min

    page = tmp_path / "report.html"
    assert cli(["report", "--from", "2026-05-28", "--to", "2026-05-31", "--out", str(page)]) == 0
    text = page.read_text()
    assert "Fleet health" in text and "limit" in text and "train-002" in text
    assert (
        cli(
            [
                "report",
                "--from-lake",
                "--from",
                "2026-05-28",
                "--to",
                "2026-05-31",
                "--out",
                str(page),
            ]
        )
        == 0
    )
    assert "Alerts by kind" in page.read_text()


def test_the_scheduled_load_loads_a_day_that_railpulse_report_reads_back(
    lake: tuple[ArchiverSettings, int, int],
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the deployment's schedule runs (`railpulse-archiver-load`, the same code path as on
    Redshift but for the dialect), here against PostgreSQL: it loads the lake, counts the
    alarm's metric, and `railpulse report` over the warehouse then tells the day as the lake
    does."""
    import json
    from datetime import UTC, datetime

    from railpulse_archiver.load import main as load_main
    from railpulse_archiver.share import fleet_report

    settings, readings, _ = lake
    schema = "sched_" + settings.warehouse_schema
    emf = tmp_path / "load.emf"
    for key, value in {
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "RAILPULSE_BUCKET_LAKE": settings.bucket_lake,
        "RAILPULSE_WAREHOUSE_DSN": postgres_dsn,
        "RAILPULSE_WAREHOUSE_SCHEMA": schema,
        "RAILPULSE_METRICS_SINK": f"file://{emf}",
    }.items():
        monkeypatch.setenv(key, value)
    assert load_main([]) == 0
    assert load_main([]) == 0  # the next scheduled run finds nothing new
    first, second = (json.loads(line) for line in emf.read_text().splitlines())
    assert (first["service"], first["stream"]) == ("archiver", "warehouse")
    assert first["WarehouseObjectsLoaded"] > 0 and first["WarehouseObjectsSetAside"] == 0
    assert second["WarehouseObjectsLoaded"] == 0
    with connect_warehouse(postgres_dsn, schema) as conn:
        row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
    assert row is not None and row[0] == readings

    day = (datetime(2026, 5, 29, tzinfo=UTC), datetime(2026, 5, 30, tzinfo=UTC))
    page = tmp_path / "day.html"
    assert cli(["report", "--from", "2026-05-29", "--to", "2026-05-30", "--out", str(page)]) == 0
    text = page.read_text()
    assert all(f"train-00{i}" in text for i in (1, 2, 3))
    from_warehouse = fleet_report(
        load_settings_from_env(), *day, tmp_path / "w.html"
    )
    from_lake = fleet_report(load_settings_from_env(), *day, tmp_path / "l.html", from_lake=True)
    assert from_warehouse == from_lake
    assert from_warehouse["trains_reporting"] == 3
    assert from_warehouse["fleet_completeness_pct"] < 100  # train-002's gap, read back


def load_settings_from_env() -> ArchiverSettings:
    from railpulse_shared.config import load_settings

    return load_settings(ArchiverSettings)
