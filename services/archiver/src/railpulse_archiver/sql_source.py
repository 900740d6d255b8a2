"""One way to run SQL for the sharing commands, over the lake (DuckDB) or the warehouse (psycopg).

Both return Arrow tables, so output formats and the report do not care where a result came from.
Parameters are written `?` and translated for psycopg.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import psycopg
import pyarrow as pa

from railpulse_archiver.errors import QueryError
from railpulse_archiver.query import run_sql
from railpulse_archiver.views import VIEWS

__all__ = ["LakeSource", "SqlSource", "WarehouseSource"]


class SqlSource(Protocol):
    name: str

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table: ...


class LakeSource:
    """DuckDB over the lake, with the warehouse's views defined on top of the lake's views."""

    name = "lake"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, with_views: bool = False) -> None:
        self.con = con
        if with_views:
            for view in VIEWS.values():
                run_sql(con, view)

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        return run_sql(self.con, sql, params)


def _plain(value: Any) -> Any:
    # Arrow infers types from Python values; NUMERIC comes back as Decimal of varying scale.
    return float(value) if isinstance(value, Decimal) else value


class WarehouseSource:
    name = "warehouse"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s").encode(), params or None)
                if cur.description is None:
                    return pa.table({})
                names = [c.name for c in cur.description]
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise QueryError(str(exc)) from exc
        columns = {n: [_plain(r[i]) for r in rows] for i, n in enumerate(names)}
        return pa.table({n: pa.array(v, _type_of(v)) for n, v in columns.items()})


def _type_of(values: list[Any]) -> pa.DataType | None:
    sample = next((v for v in values if v is not None), None)
    if sample is None:
        return pa.string()
    if isinstance(sample, datetime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(sample, date):
        return pa.date32()
    return None
