"""What the sharing commands (`railpulse query | export | report | load`) do, minus argparse."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa
import structlog

from railpulse_archiver.catalog import GlueCatalog
from railpulse_archiver.compaction import (
    DEFAULT_GRACE_S,
    DEFAULT_TARGET_BYTES,
    CompactionResult,
    compact,
)
from railpulse_archiver.errors import LakeUnavailableError, NoDataError
from railpulse_archiver.generations import list_lake
from railpulse_archiver.pdf import print_pdf
from railpulse_archiver.query import (
    OutputFormat,
    Scan,
    connect_lake,
    run_profiled,
    write_result,
)
from railpulse_archiver.redshift import RedshiftTarget, connect_redshift
from railpulse_archiver.report import build_report, render_html
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.sql_source import LakeSource, SqlSource, WarehouseSource
from railpulse_archiver.store import LocalStore, S3Store
from railpulse_archiver.tables import TABLES
from railpulse_archiver.warehouse import (
    LoadReport,
    PostgresDialect,
    RedshiftDialect,
    WarehouseLoader,
    connect_warehouse,
    lake_objects,
)
from railpulse_shared.aws import AwsClients
from railpulse_shared.metric_names import WAREHOUSE_OBJECTS_SET_ASIDE
from railpulse_shared.metrics import Metrics

__all__ = [
    "compact_lake",
    "export_train",
    "fleet_report",
    "lake_root",
    "load_warehouse",
    "open_lake",
    "open_source",
    "open_warehouse",
    "parse_time",
    "query",
    "run_query",
    "select_train",
]

logger = structlog.get_logger()


def lake_root(settings: ArchiverSettings, override: str | None = None) -> str:
    return override or f"s3://{settings.bucket_lake}"


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; naive means UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_lake(settings: ArchiverSettings, lake: str | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB over the lake; a root that holds no lake table at all is `NoDataError`."""
    root = lake_root(settings, lake)
    try:
        con = connect_lake(root, endpoint=settings.endpoint_for("s3"), region=settings.aws_region)
        listing = list_lake(con, root)
        found = [name for name in TABLES if listing.files(name)]
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "404" in first or "NoSuchBucket" in first:
            raise NoDataError(f"no lake at {root}: the bucket does not exist") from exc
        raise LakeUnavailableError(f"cannot read the lake at {root}: {first}") from exc
    if not found:
        tables = ", ".join(f"{name}/" for name in TABLES)
        raise NoDataError(
            f"no lake at {root}: no Parquet objects under {tables} (nothing archived yet, "
            "or the wrong --lake)"
        )
    return con


def open_warehouse(settings: ArchiverSettings) -> Any:
    """The warehouse: PostgreSQL by DSN (local), or Redshift Serverless signed in through IAM
    (`RAILPULSE_WAREHOUSE_DIALECT=redshift`, in AWS); either with its schema set."""
    if settings.warehouse_dialect != "redshift":
        return connect_warehouse(settings.warehouse_url, settings.warehouse_schema)
    conn = connect_redshift(
        RedshiftTarget(
            host=settings.redshift_host,
            port=settings.redshift_port,
            database=settings.redshift_database,
            workgroup=settings.redshift_workgroup,
            region=settings.aws_region,
        )
    )
    schema = settings.warehouse_schema.replace('"', '""')
    if settings.warehouse_schema != "public":  # public exists; creating needs CREATE on the db
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


def open_source(
    settings: ArchiverSettings, *, warehouse: bool, lake: str | None = None, views: bool = False
) -> SqlSource:
    if warehouse:
        return WarehouseSource(open_warehouse(settings))
    return LakeSource(open_lake(settings, lake), with_views=views)


def run_query(
    source: SqlSource, sql: str, *, explain: bool = False
) -> tuple[pa.Table, Scan | None]:
    """Run `sql` once; with `explain`, over the lake, also the objects it read of those it saw."""
    if explain and isinstance(source, LakeSource):
        return run_profiled(source.con, sql)
    return source.query(sql), None


def query(
    settings: ArchiverSettings,
    sql: str,
    *,
    fmt: OutputFormat,
    out: Path | None,
    stream: TextIO,
    warehouse: bool = False,
    lake: str | None = None,
    explain: TextIO | None = None,
) -> int:
    source = open_source(settings, warehouse=warehouse, lake=lake, views=True)
    result, scan = run_query(source, sql, explain=explain is not None)
    write_result(result, fmt, out, stream)
    if explain is not None and scan is not None:
        explain.write(f"objects read: {scan.files_read} of {scan.files_total}\n")
    return int(result.num_rows)


def select_train(
    settings: ArchiverSettings,
    train: str,
    start: datetime,
    end: datetime,
    *,
    warehouse: bool = False,
    lake: str | None = None,
) -> pa.Table:
    """One train's readings in [start, end); none is `NoDataError` (naming trains that have some)."""
    source = open_source(settings, warehouse=warehouse, lake=lake)
    params: list[Any] = [start, end]
    where = "ts >= ? AND ts < ?"
    if not warehouse:
        # The partition predicate is what lets DuckDB skip every other day's objects.
        where += " AND dt BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)"
        params += [start.astimezone(UTC).date(), end.astimezone(UTC).date()]
    result = source.query(
        f"SELECT * FROM telemetry WHERE train = ? AND {where} ORDER BY ts, channel",
        [train, *params],
    )
    if result.num_rows == 0:
        others = (
            source.query(
                f"SELECT DISTINCT train FROM telemetry WHERE {where} ORDER BY train", params
            )
            .column("train")
            .to_pylist()
        )
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise NoDataError(
            f"no readings of {train} from {start.isoformat()} to {end.isoformat()} "
            + (f"(trains with readings then: {shown})" if others else "(no train has any then)")
        )
    return result


def export_train(
    settings: ArchiverSettings,
    train: str,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    warehouse: bool = False,
    lake: str | None = None,
    fmt: OutputFormat | None = None,
) -> int:
    """One train's readings in [start, end) to CSV or Parquet (`fmt`, else by the extension)."""
    result = select_train(settings, train, start, end, warehouse=warehouse, lake=lake)
    if fmt is None:
        fmt = "parquet" if out.suffix in (".parquet", ".pq") else "csv"
    write_result(result, fmt, out, None)
    return int(result.num_rows)


def fleet_report(
    settings: ArchiverSettings,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    lake: str | None = None,
    from_lake: bool = False,
    pdf: Path | None = None,
) -> dict[str, Any]:
    """Fleet health over [start, end) as the HTML page `out`, and printed to `pdf` if given."""
    source = open_source(settings, warehouse=not from_lake, lake=lake, views=True)
    report = build_report(source, start, end)
    out.write_text(render_html(report))
    if pdf is not None:
        print_pdf(out, pdf)
    return report.summary


def load_warehouse(
    settings: ArchiverSettings,
    *,
    lake: str | None = None,
    retry_set_aside: bool = False,
    metrics: Metrics | None = None,
) -> LoadReport:
    """Load every lake object not in the ledger (objects set aside earlier only when
    `retry_set_aside`); count what was loaded and what is set aside in `metrics`."""
    root = lake_root(settings, lake)
    try:
        duck = connect_lake(root, endpoint=settings.endpoint_for("s3"), region=settings.aws_region)
    except duckdb.Error as exc:
        raise LakeUnavailableError(f"cannot read the lake at {root}: {exc}") from exc
    conn = open_warehouse(settings)
    dialect = (
        RedshiftDialect(settings.bucket_lake, settings.redshift_iam_role)
        if settings.warehouse_dialect == "redshift"
        else PostgresDialect(duck, root)
    )
    loader = WarehouseLoader(conn, dialect)
    loader.ensure_schema()
    report = loader.load(lake_objects(duck, root), retry_set_aside=retry_set_aside)
    logger.info(
        "warehouse_loaded",
        objects=len(report.loaded),
        skipped=report.skipped,
        rows=report.rows,
        set_aside=len(report.set_aside),
        held=report.held,
    )
    if metrics is not None:
        metrics.add("WarehouseObjectsLoaded", len(report.loaded))
        metrics.add("WarehouseRowsLoaded", report.rows)
        # What stays set aside now (new ones and older ones not retried): the alarm's metric, so
        # it stays in ALARM until the objects are fixed and loaded.
        metrics.add(WAREHOUSE_OBJECTS_SET_ASIDE, len(report.set_aside) + report.held)
        metrics.flush()
    return report


def compact_lake(
    settings: ArchiverSettings,
    day: str,
    *,
    hour: str | None = None,
    tables: list[str] | None = None,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    grace_s: float = DEFAULT_GRACE_S,
    lake: str | None = None,
) -> list[CompactionResult]:
    """Compact a day's (or an hour's) partitions of the lake; in S3, also point the Glue
    partitions at the new generations (a local folder has no catalogue)."""
    root = lake_root(settings, lake)
    try:
        duck = connect_lake(root, endpoint=settings.endpoint_for("s3"), region=settings.aws_region)
    except duckdb.Error as exc:
        raise LakeUnavailableError(f"cannot read the lake at {root}: {exc}") from exc

    async def run() -> list[CompactionResult]:
        if not root.startswith("s3://"):
            return await compact(
                duck, LocalStore(Path(root)), root, day, hour=hour, tables=tables,
                target_bytes=target_bytes, grace_s=grace_s,
            )
        clients = AwsClients(settings)
        bucket = root.removeprefix("s3://").split("/", 1)[0]
        async with clients.create("s3") as s3, clients.create("glue") as glue:
            return await compact(
                duck, S3Store(s3, bucket), root, day, hour=hour, tables=tables,
                target_bytes=target_bytes, grace_s=grace_s,
                catalog=GlueCatalog(glue, settings.glue_database, bucket),
            )

    return asyncio.run(run())
