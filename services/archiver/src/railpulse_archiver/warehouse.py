"""The warehouse: tables mirroring the lake, a ledger of loaded objects, a loader, engineers' views
(defined in `views.py`).

Idempotence: each object is loaded in one transaction that also inserts its key into
`archive_ledger` (primary key; a loose object's key less its schema version, `keys.segment_id`,
so a flush range rewritten by a newer archiver is still the one already loaded). A retry after
any failure — before, during or after the COPY, or after the commit when the client never heard
back — finds the key in the ledger or finds nothing of the object loaded, so no row is ever
loaded twice. Objects are immutable under their key
(see `lake.py`), which is what makes the key a sound identity.

An object the warehouse refuses (bad data in it, say a NUL PostgreSQL's text cannot hold, or an
unreadable file) is set aside: recorded in `archive_setaside` with the error and the number of
attempts, and the loader goes on with the next one, so one bad object never blocks the rest.
Later loads leave it alone (it would fail again) until asked to retry the set-aside objects
(`railpulse load --retry-set-aside`) after a fix; a successful load removes it from there. Only
a warehouse that cannot be reached stops a load.

Compaction (`compaction.py`) rewrites loose objects into a generation under new keys; the ledger
keeps naming the loose keys (a flush's identity: its *segments*). A generation is loaded as one
unit, in one transaction that inserts its ledger row (`unit`, carrying the rows loaded) and a row
per segment it holds that the ledger lacks (row_count 0: counted in the unit's row); if some of
its segments were loaded before (as loose objects, or by an older generation), only the rows of
the others are loaded, picked by their source position (a segment's key names its shard and
sequence range, and its rows carry them). So every row is loaded once, whichever of a row's
objects the loader happened to list.

Dialects: `postgres` (local) reads the object from the lake with DuckDB and bulk-loads it with
`COPY ... FROM STDIN`; `redshift` issues `COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS PARQUET`
so the cluster reads S3 itself. Column order in the tables equals the Parquet files' (Redshift's
Parquet COPY maps by position).

Schema evolution (`tables.Table.added`): `ensure_schema` adds a lake column the warehouse table
lacks (`ALTER TABLE ... ADD COLUMN ... DEFAULT`, at the end, as in the lake's schema, so existing
rows take the default). Loading an object older than the column: PostgreSQL gets the default from
the lake scan (`scan.read_sql`); Redshift's COPY takes it with `FILLRECORD` (the missing last
columns load as NULL, which the views read as the default), only for an object whose key names an
older schema version (`keys.py`).
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
from railpulse_archiver.generations import GenerationUnit, list_lake, segment_range
from railpulse_archiver.keys import key_version, segment_id
from railpulse_archiver.scan import read_sql
from railpulse_archiver.tables import TABLES, Table
from railpulse_archiver.views import VIEWS

__all__ = [
    "LoadReport",
    "PostgresDialect",
    "RedshiftDialect",
    "WarehouseLoader",
    "column_ddl",
    "connect_warehouse",
    "ddl",
    "lake_objects",
    "ledger_ddl",
    "segment_filter",
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


def _sql_type(t: pa.DataType, text: str, binary: str) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if t == pa.binary():
        return binary
    return text if t == pa.string() else _PG_TYPES[t]


def column_ddl(table: Table, field: pa.Field, text: str = "TEXT", binary: str = "BYTEA") -> str:
    """One column's definition. An added column has its default and allows NULL (Redshift's
    COPY of an object older than it loads NULL there)."""
    added = dict(table.added)
    kind = _sql_type(field.type, text, binary)
    if field.name in added:
        value = added[field.name]
        literal = str(value).upper() if isinstance(value, bool) else repr(value)
        return f"{field.name} {kind} DEFAULT {literal}"
    return f"{field.name} {kind}{'' if field.nullable else ' NOT NULL'}"


def ddl(table: Table, text: str = "TEXT", binary: str = "BYTEA") -> str:
    """`text` is the string type: TEXT on PostgreSQL; VARCHAR(65535) on Redshift, whose TEXT
    means VARCHAR(256); `binary` the byte string type (BYTEA; Redshift's VARBYTE)."""
    columns = ",\n    ".join(column_ddl(table, f, text, binary) for f in table.schema)
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
    binary_type: str
    serialise: str | None
    """A statement that makes concurrent loaders take turns (where keys are not enforced)."""

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        """Load one lake object into `table` inside the caller's transaction; return its rows."""
        ...

    def copy_rows(
        self, cur: psycopg.Cursor[Any], table: Table, keys: list[str], where: str | None
    ) -> int:
        """Load the rows of `keys` that match `where` (all with None); return how many."""
        ...


_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_POSITION = "lpad(source_seq, 64, '0') || lpad(CAST(source_sub_seq AS VARCHAR), 10, '0')"
"""A source position as text that sorts like the position (portable: DuckDB and Redshift)."""


def _position(pos: tuple[str, int]) -> str:
    return pos[0].rjust(64, "0") + str(pos[1]).rjust(10, "0")


def segment_filter(segments: Iterable[str]) -> str:
    """SQL true for exactly the rows of the given loose objects (segments), by source position.

    Values are inlined (the same text runs on DuckDB and Redshift); keys are checked to hold
    nothing but what the archiver puts in them."""
    terms = []
    for key in sorted(segments):
        shard, first, last = segment_range(key)
        if not set(shard) <= _SAFE or not (first[0] + last[0]).isdigit():
            raise WarehouseError(f"not a lake object key: {key!r}")
        terms.append(
            f"(source_shard = '{shard}' AND {_POSITION} "
            f"BETWEEN '{_position(first)}' AND '{_position(last)}')"
        )
    return "(" + " OR ".join(terms) + ")" if terms else "FALSE"


class PostgresDialect:
    """Local: DuckDB reads the object from the lake, PostgreSQL takes it by `COPY FROM STDIN`."""

    name = "postgres"
    text_type = "TEXT"
    binary_type = "BYTEA"
    serialise: str | None = None  # the ledger's primary key stops a second loader of an object

    def __init__(self, lake: duckdb.DuckDBPyConnection, root: str) -> None:
        self.lake = lake
        self.root = root.rstrip("/")

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        return self.copy_rows(cur, table, [key], None)

    def copy_rows(
        self, cur: psycopg.Cursor[Any], table: Table, keys: list[str], where: str | None
    ) -> int:
        select = read_sql(table, [f"{self.root}/{k}" for k in keys])
        data = self.lake.execute(f"{select} WHERE {where or 'TRUE'}").fetch_arrow_table()
        return self._copy_table(cur, table, data)

    def _copy_table(self, cur: psycopg.Cursor[Any], table: Table, data: pa.Table) -> int:
        data = data.select(table.schema.names)
        for i, column in enumerate(data.schema):
            if pa.types.is_binary(column.type):
                # Arrow's CSV writer has no byte strings; PostgreSQL reads BYTEA as hex text.
                hexed = [None if v is None else "\\x" + v.hex() for v in data[i].to_pylist()]
                data = data.set_column(i, column.name, pa.array(hexed, pa.string()))
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
    binary_type = "VARBYTE(1024000)"
    """Redshift's largest: a reject's raw bytes are at most ~256 KiB (larger ones are in S3)."""
    # Redshift does not enforce primary keys: an overlapping scheduled run waits on the lock,
    # then finds the object in the ledger and loads nothing.
    serialise: str | None = "LOCK archive_ledger"

    def __init__(self, bucket: str, iam_role: str) -> None:
        self.bucket = bucket
        self.iam_role = iam_role

    def statement(self, table: Table, key: str, into: str | None = None) -> str:
        # FILLRECORD: an object older than an added column lacks it (loaded as NULL).
        fill = " FILLRECORD" if key_version(key) < table.version else ""
        return (
            f"COPY {into or table.name} FROM 's3://{self.bucket}/{key}' "
            f"IAM_ROLE '{self.iam_role}' FORMAT AS PARQUET{fill}"
        )

    def copy(self, cur: psycopg.Cursor[Any], table: Table, key: str) -> int:
        cur.execute(self.statement(table, key).encode())
        cur.execute("SELECT pg_last_copy_count()")
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def rows_statements(self, table: Table, keys: list[str], where: str) -> list[str]:
        """Some rows of a generation: COPY into a staging table, insert the matching ones."""
        stage = f"{table.name}_stage"
        copies = [self.statement(table, k, stage) for k in keys]
        return [
            f"CREATE TEMP TABLE {stage} (LIKE {table.name})",
            *copies,
            f"INSERT INTO {table.name} SELECT * FROM {stage} WHERE {where}",
            f"DROP TABLE {stage}",
        ]

    def copy_rows(
        self, cur: psycopg.Cursor[Any], table: Table, keys: list[str], where: str | None
    ) -> int:
        if where is None:
            return sum(self.copy(cur, table, k) for k in keys)
        statements = self.rows_statements(table, keys, where)
        for statement in statements[:-2]:
            cur.execute(statement.encode())
        cur.execute(f"SELECT count(*) FROM {table.name}_stage WHERE {where}".encode())
        row = cur.fetchone()
        for statement in statements[-2:]:
            cur.execute(statement.encode())
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
                text, binary = self.dialect.text_type, self.dialect.binary_type
                self.conn.execute(ddl(table, text, binary).encode())
                for missing in self._missing_columns(table):
                    column = column_ddl(table, missing, text, binary)
                    self.conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column}".encode())
            for view in VIEWS.values():
                self.conn.execute(view.encode())

    def _missing_columns(self, table: Table) -> list[pa.Field]:
        """The lake columns `table` lacks in the warehouse (added to the lake since)."""
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table.name,),
        ).fetchall()
        have = {str(r[0]) for r in rows}
        return [f for f in table.schema if f.name not in have]

    def loaded_keys(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT object_key FROM archive_ledger")}

    def set_aside_keys(self) -> dict[str, str]:
        """Objects set aside: key -> the last error."""
        rows = self.conn.execute("SELECT object_key, error FROM archive_setaside")
        return {row[0]: row[1] for row in rows}

    def load(
        self, objects: Iterable[tuple[str, str] | GenerationUnit], *, retry_set_aside: bool = False
    ) -> LoadReport:
        """Load `(table, key)` objects and generations not in the ledger yet, one transaction
        each; set aside what the warehouse refuses and go on (objects set aside earlier are
        tried again only with `retry_set_aside`)."""
        report = LoadReport()
        done = self.loaded_keys()
        aside = self.set_aside_keys()
        for item in objects:
            if isinstance(item, GenerationUnit):
                table_name, key = item.table, item.state.unit
                todo = [k for k in item.state.segments if segment_id(k) not in done]
                if not todo:
                    report.skipped += 1
                    continue
            else:
                table_name, key = item
                if segment_id(key) in done:
                    report.skipped += 1
                    continue
            if key in aside and not retry_set_aside:
                report.held += 1
                continue
            table = TABLES[table_name]
            try:
                if isinstance(item, GenerationUnit):
                    rows = self._load_generation(table, item, todo, was_set_aside=key in aside)
                else:
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
        segment = segment_id(key)
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.dialect.serialise:
                cur.execute(self.dialect.serialise)
                cur.execute("SELECT 1 FROM archive_ledger WHERE object_key = %s", (segment,))
                if cur.fetchone() is not None:
                    raise psycopg.errors.UniqueViolation(f"{key} is in the ledger already")
            # The ledger row first: a concurrent loader of the same object waits on its
            # primary key, then fails on it and loads nothing (PostgreSQL enforces keys;
            # on Redshift the lock above does it).
            cur.execute(
                "INSERT INTO archive_ledger (object_key, table_name, row_count, loaded_at) "
                "VALUES (%s, %s, 0, %s)",
                (segment, table.name, datetime.now(UTC)),
            )
            rows = self.dialect.copy(cur, table, key)
            cur.execute(
                "UPDATE archive_ledger SET row_count = %s WHERE object_key = %s", (rows, segment)
            )
            if was_set_aside:
                cur.execute("DELETE FROM archive_setaside WHERE object_key = %s", (key,))
        return rows

    def _load_generation(
        self, table: Table, unit: GenerationUnit, todo: list[str], *, was_set_aside: bool
    ) -> int:
        key = unit.state.unit
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.dialect.serialise:
                cur.execute(self.dialect.serialise)
                keys = [key, *(segment_id(k) for k in todo)]
                marks = ", ".join("%s" for _ in keys)
                cur.execute(
                    f"SELECT count(*) FROM archive_ledger WHERE object_key IN ({marks})", keys
                )
                row = cur.fetchone()
                if row is not None and int(row[0]):
                    raise psycopg.errors.UniqueViolation(f"{key} is in the ledger already")
            # Ledger rows first (see `_load_one`): a concurrent loader of any of these segments
            # waits on its key, then fails on it.
            cur.executemany(
                "INSERT INTO archive_ledger (object_key, table_name, row_count, loaded_at) "
                "VALUES (%s, %s, 0, %s)",
                [(k, table.name, now) for k in [key, *(segment_id(k) for k in todo)]],
            )
            where = None if len(todo) == len(unit.state.segments) else segment_filter(todo)
            rows = self.dialect.copy_rows(cur, table, list(unit.state.objects), where)
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


def lake_objects(
    lake: duckdb.DuckDBPyConnection, root: str
) -> list[tuple[str, str] | GenerationUnit]:
    """The live lake as load units: each compacted generation, then every loose object (as
    `(table, key relative to the root)`, oldest key first), per table."""
    listing = list_lake(lake, root)
    found: list[tuple[str, str] | GenerationUnit] = []
    for table in TABLES.values():
        found.extend(listing.generations[table.name])
        found.extend((table.name, k) for k in listing.loose[table.name])
    return found
