"""How every reader of the lake reads a table's objects: one `SELECT` over DuckDB's
`read_parquet`, with the table's columns whatever the objects' age.

Objects written before a column was added (`Table.added`) lack it. DuckDB reads a list of
Parquet files with the first one's schema (a later file without a column fails, and one with a
column the first lacks loses it), so a table with added columns is read with `union_by_name`,
and `scan_select` gives the added column its default where the objects lack it. A table whose
schema never changed is read as before (no per-file schema pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from railpulse_archiver.tables import Table, scan_select

__all__ = ["read_sql"]

HIVE_TYPES = {"dt": "DATE", "hour": "INTEGER"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_sql(
    con: duckdb.DuckDBPyConnection, table: Table, paths: Sequence[str], *, hive: bool = False
) -> str:
    """`SELECT` of every column of `table` (in schema order; then, with `hive`, the partition
    columns from the keys) over the objects at `paths` (at least one)."""
    options = []
    if hive:
        types = ", ".join(f"'{k}': '{HIVE_TYPES[k]}'" for k in table.partition_keys)
        options.append(f"hive_partitioning = true, hive_types = {{{types}}}")
    else:
        options.append("hive_partitioning = false")
    if table.added:
        options.append("union_by_name = true")
    source = f"read_parquet([{', '.join(_quote(p) for p in paths)}], {', '.join(options)})"
    extra = [f'"{k}"' for k in table.partition_keys] if hive else []
    if not table.added:
        columns = ", ".join([*(f'"{n}"' for n in table.schema.names), *extra])
        return f"SELECT {columns} FROM {source}"
    present = con.sql(f"SELECT * FROM {source} LIMIT 0").columns
    return f"SELECT {', '.join([scan_select(table, present), *extra])} FROM {source}"
