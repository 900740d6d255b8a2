"""The warehouse: tables mirroring the lake, a ledger of loaded objects, a loader, engineers' views
(defined in `views.py`).

Idempotence: each object is loaded in one transaction that also inserts its key into
`archive_ledger` (primary key). A retry after any failure — before, during or after the COPY, or
after the commit when the client never heard back — finds the key in the ledger or finds nothing
of the object loaded, so no row is ever loaded twice. Objects are immutable under their key
(see `lake.py`), which is what makes the key a sound identity.

An object the warehouse refuses (bad data in it, say a NUL PostgreSQL's text cannot hold, or an
unreadable file) is set aside: recorded in `archive_setaside` with the error and the number of
attempts, and the loader goes on with the next one, so one bad object never blocks the rest.
Later loads leave it alone (it would fail again) until asked to retry the set-aside objects
(`railpulse load --retry-set-aside`) after a fix; a successful load removes it from there. Only
a warehouse that cannot be reached stops a load.

Dialects: `postgres` (local) reads the object from the lake with DuckDB and bulk-loads it with
`COPY ... FROM STDIN`; `redshift` issues `COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS PARQUET`
so the cluster reads S3 itself. Column order in the tables equals the Parquet files' (Redshift's
Parquet COPY maps by position).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import structlog
from psycopg import sql

from railpulse_archiver.errors import WarehouseError, WarehouseUnavailableError
from railpulse_archiver.query import lake_glob
from railpulse_archiver.tables import TABLES, Table
from railpulse_archiver.views import VIEWS

__all__ = [
    "LoadReport",
    "PostgresDialect",
    "RedshiftDialect",
    "WarehouseLoader",
    "connect_warehouse",
    "ddl",
    "lake_objects",
    "ledger_ddl",
    "setaside_ddl",
]

logger = structlog.get_logger()

_PG_TYPES = {
    pa.string(): "TEXT",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "SMALLINT",
    pa.float64(): "DOUBLE PRECISION",
    pa.bool_(): "BOOLEAN",
}


def ledger_ddl(text: str = "TEXT") -> str:
    # No DEFAULT now(): on Redshift it is a leader-node-only function. The loader sets loaded_at.
    return f"""
CREATE TABLE IF NOT EXISTS archive_ledger (
    object_key {text} PRIMARY KEY,
    table_name {text} NOT NULL,
    row_count BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
)"""


def setaside_ddl(text: str = "TEXT") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS archive_setaside (
    object_key {text} PRIMARY KEY,
    table_name {text} NOT NULL,
    error {text} NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL
)"""


def _sql_type(t: pa.DataType, text: str) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return text if t == pa.string() else _PG_TYPES[t]


def ddl(table: Table, text: str = "TEXT") -> str:
    """`text` is the string type: TEXT on PostgreSQL; VARCHAR(65535) on Redshift, whose TEXT
    means VARCHAR(256)."""
    columns = ",\n    ".join(
        f"{f.name} {_sql_type(f.type, text)}{'' if f.nullable else ' NOT NULL'}"
        for f in table.schema
    )
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {columns}\n)"


def connect_warehouse(dsn: str, schema: str = "public") -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise WarehouseUnavailableError(f"cannot connect to the warehouse: {exc}") from exc
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


class Dialect(Protocol):
    name: str
    text_type: str
    serialise: str | None
    """A statement that makes concurrent loaders take turns (where keys are not enforced)."""

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        """Load one lake object into `table` inside the caller's transaction; return its rows."""
        ...


class PostgresDialect:
    """Local: DuckDB reads the object from the lake, PostgreSQL takes it by `COPY FROM STDIN`."""

    name = "postgres"
    text_type = "TEXT"
    serialise: str | None = None  # the ledger's primary key stops a second loader of an object

    def __init__(self, lake: duckdb.DuckDBPyConnection, root: str) -> None:
        self.lake = lake
        self.root = root.rstrip("/")

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        data = self.lake.execute(
            "SELECT * FROM read_parquet(?)", [f"{self.root}/{key}"]
        ).fetch_arrow_table()
        data = data.select(table.schema.names)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(data, sink, pacsv.WriteOptions(include_header=False))
        columns = sql.SQL(", ").join(sql.Identifier(n) for n in table.schema.names)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(table.name), columns
        )
        with cur.copy(statement) as copy:
            copy.write(sink.getvalue().to_pybytes())
        return int(data.num_rows)


class RedshiftDialect:
    """AWS: the cluster reads the object from S3 itself (the SQL only; runs on Redshift)."""

    name = "redshift"
    text_type = "VARCHAR(65535)"
    # Redshift does not enforce primary keys: an overlapping scheduled run waits on the lock,
    # then finds the object in the ledger and loads nothing.
    serialise: str | None = "LOCK archive_ledger"

    def __init__(self, bucket: str, iam_role: str) -> None:
        self.bucket = bucket
        self.iam_role = iam_role

    def statement(self, table: Table, key: str) -> str:
        return (
            f"COPY {table.name} FROM 's3://{self.bucket}/{key}' "
            f"IAM_ROLE '{self.iam_role}' FORMAT AS PARQUET"
        )

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        cur.execute(self.statement(table, key).encode())
        cur.execute("SELECT pg_last_copy_count()")
        row = cur.fetchone()
        return int(row[0]) if row else 0


@dataclass(slots=True)
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    skipped: int = 0
    rows: int = 0
    set_aside: dict[str, str] = field(default_factory=dict)
    """Objects this load could not load: key -> error."""
    held: int = 0
    """Objects set aside earlier and not retried by this load."""


_MAX_ERROR = 2000


class WarehouseLoader:
    def __init__(self, conn: psycopg.Connection[Any], dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def ensure_schema(self) -> None:
        with self.conn.transaction():
            self.conn.execute(ledger_ddl(self.dialect.text_type).encode())
            self.conn.execute(setaside_ddl(self.dialect.text_type).encode())
            for table in TABLES.values():
                self.conn.execute(ddl(table, self.dialect.text_type).encode())
            for view in VIEWS.values():
                self.conn.execute(view.encode())

    def loaded_keys(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT object_key FROM archive_ledger")}

    def set_aside_keys(self) -> dict[str, str]:
        """Objects set aside: key -> the last error."""
        rows = self.conn.execute("SELECT object_key, error FROM archive_setaside")
        return {row[0]: row[1] for row in rows}

    def load(
        self, objects: Iterable[tuple[str, str]], *, retry_set_aside: bool = False
    ) -> LoadReport:
        """Load `(table, key)` objects not in the ledger yet, one transaction each; set aside
        what the warehouse refuses and go on (objects set aside earlier are tried again only
        with `retry_set_aside`)."""
        report = LoadReport()
        done = self.loaded_keys()
        aside = self.set_aside_keys()
        for table_name, key in objects:
            if key in done:
                report.skipped += 1
                continue
            if key in aside and not retry_set_aside:
                report.held += 1
                continue
            table = TABLES[table_name]
            try:
                rows = self._load_one(table, key, was_set_aside=key in aside)
            except psycopg.errors.UniqueViolation:
                report.skipped += 1  # another loader got there first
                continue
            except (psycopg.OperationalError, duckdb.IOException) as exc:
                # The warehouse (or the lake) cannot be reached: nothing is wrong with the object.
                raise WarehouseUnavailableError(f"loading {key}: {exc}") from exc
            except (psycopg.Error, duckdb.Error, pa.ArrowException) as exc:
                error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
                self._set_aside(table, key, error)
                report.set_aside[key] = error
                logger.error("object_set_aside", key=key, table=table.name, error=error)
                continue
            report.loaded.append(key)
            report.rows += rows
            logger.info("object_loaded", key=key, table=table.name, rows=rows)
        return report

    def _load_one(self, table: Table, key: str, *, was_set_aside: bool) -> int:
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.dialect.serialise:
                cur.execute(self.dialect.serialise)
                cur.execute("SELECT 1 FROM archive_ledger WHERE object_key = %s", (key,))
                if cur.fetchone() is not None:
                    raise psycopg.errors.UniqueViolation(f"{key} is in the ledger already")
            # The ledger row first: a concurrent loader of the same object waits on its
            # primary key, then fails on it and loads nothing (PostgreSQL enforces keys;
            # on Redshift the lock above does it).
            cur.execute(
                "INSERT INTO archive_ledger (object_key, table_name, row_count, loaded_at) "
                "VALUES (%s, %s, 0, %s)",
                (key, table.name, datetime.now(UTC)),
            )
            rows = self.dialect.copy(cur, table, key)
            cur.execute(
                "UPDATE archive_ledger SET row_count = %s WHERE object_key = %s", (rows, key)
            )
            if was_set_aside:
                cur.execute("DELETE FROM archive_setaside WHERE object_key = %s", (key,))
        return rows

    def _set_aside(self, table: Table, key: str, error: str) -> None:
        """Record the failure in its own transaction (the load's rolled back)."""
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute("SELECT attempts FROM archive_setaside WHERE object_key = %s", (key,))
                row = cur.fetchone()
                attempts = (int(row[0]) if row else 0) + 1
                cur.execute("DELETE FROM archive_setaside WHERE object_key = %s", (key,))
                cur.execute(
                    "INSERT INTO archive_setaside "
                    "(object_key, table_name, error, attempts, failed_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (key, table.name, error.replace("\x00", "\\0"), attempts, datetime.now(UTC)),
                )
        except psycopg.OperationalError as exc:
            raise WarehouseUnavailableError(f"setting {key} aside: {exc}") from exc
        except psycopg.Error as exc:
            raise WarehouseError(f"setting {key} aside: {exc}") from exc


def lake_objects(lake: duckdb.DuckDBPyConnection, root: str) -> list[tuple[str, str]]:
    """Every object of every lake table, as `(table, key relative to the root)`, oldest key first."""
    prefix = root.rstrip("/") + "/"
    found: list[tuple[str, str]] = []
    for table in TABLES.values():
        rows = lake.execute(
            "SELECT file FROM glob(?) ORDER BY file", [lake_glob(root, table)]
        ).fetchall()
        found.extend((table.name, str(r[0]).removeprefix(prefix)) for r in rows)
    return found
