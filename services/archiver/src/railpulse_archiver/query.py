"""SQL over the lake with DuckDB: views over the Parquet objects, partition pruning, output.

`connect_lake` opens DuckDB with the httpfs extension (shipped as a wheel: DuckDB cannot download
extensions here) pointed at S3 or at the local stack's endpoint (`AWS_ENDPOINT_URL`), and defines
one view per lake table over its live Hive-partitioned objects (`generations.list_lake`: loose
flush objects and compacted generations, never both for the same rows). A filter on `dt` / `hour` prunes whole
objects before they are opened; a filter on `train` or `ts` then skips row groups by their
statistics. `run_profiled` runs a query once with DuckDB's profile on, to show which objects it
really read (`files_scanned` when only that matters).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import botocore.session
import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from railpulse_archiver.errors import QueryError
from railpulse_archiver.generations import list_lake
from railpulse_archiver.scan import read_sql
from railpulse_archiver.tables import TABLES, Table

__all__ = [
    "OutputFormat",
    "connect_lake",
    "files_scanned",
    "lake_glob",
    "run_profiled",
    "run_sql",
    "write_result",
]

OutputFormat = Literal["table", "csv", "parquet"]


def _extension_dir() -> str:
    return str(resources.files("duckdb_ext") / "extensions")


def lake_glob(root: str, table: Table) -> str:
    depth = "/".join("*" for _ in table.partition_keys)
    return f"{root.rstrip('/')}/{table.name}/{depth}/*.parquet"


def _s3_secret(con: duckdb.DuckDBPyConnection, endpoint: str | None, region: str) -> None:
    credentials = botocore.session.get_session().get_credentials()
    options = {"TYPE": "s3", "REGION": region}
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options["KEY_ID"] = frozen.access_key
        options["SECRET"] = frozen.secret_key
        if frozen.token:
            options["SESSION_TOKEN"] = frozen.token
    if endpoint:
        url = urlparse(endpoint)
        options["ENDPOINT"] = url.netloc
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if url.scheme == "https" else "false"
    body = ", ".join(
        f"{k} {v}" if v in ("true", "false") or k == "TYPE" else f"{k} '{v}'"
        for k, v in options.items()
    )
    con.execute(f"CREATE OR REPLACE SECRET lake ({body})")


def connect_lake(
    root: str,
    *,
    endpoint: str | None = None,
    region: str = "us-east-1",
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """DuckDB with a view per lake table (`telemetry`, `alerts`, `alarms`, `rejects`) over the
    lake at `root`.

    `root` is `s3://bucket` or a local folder laid out like the bucket.
    """
    config: dict[str, Any] = {
        "extension_directory": _extension_dir(),
        "autoinstall_known_extensions": False,
    }
    if threads:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")  # dates and hours in results match the partitions
    if root.startswith("s3://"):
        con.execute("LOAD httpfs")
        _s3_secret(con, endpoint, region)
    # The live objects, listed once (compaction-aware, see `generations.py`): the views read
    # exactly these, so each row is seen once even while a compaction commits.
    listing = list_lake(con, root)
    base = root.rstrip("/")
    for table in TABLES.values():
        files = listing.files(table.name)
        if not files:
            _empty_view(con, table)
            continue
        select = read_sql(table, [f"{base}/{k}" for k in files], hive=True)
        con.execute(f"CREATE OR REPLACE VIEW {table.name} AS {select}")
    return con


def _empty_view(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    # Same columns as a populated view, no rows: queries work before the first flush.
    fields = [
        *table.schema,
        *(pa.field(k, pa.date32() if k == "dt" else pa.int32()) for k in table.partition_keys),
    ]
    con.register(f"_{table.name}_empty", pa.schema(fields).empty_table())
    con.execute(f"CREATE OR REPLACE VIEW {table.name} AS SELECT * FROM _{table.name}_empty")


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    try:
        return con.execute(sql, params or []).fetch_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Scan:
    files_read: int
    files_total: int


def files_scanned(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> Scan:
    """Run `sql` with profiling and report how many Parquet objects it opened of those it saw."""
    return run_profiled(con, sql, params)[1]


def run_profiled(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> tuple[pa.Table, Scan]:
    """Run `sql` once, with profiling: its result, and the objects it opened of those it saw."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        con.execute(f"SET profiling_output = '{out}'")
        # `ALL`: a plain count(*) is answered from Parquet metadata, which the default coverage
        # (`SELECT`) leaves unprofiled, writing no profile at all. Every statement is profiled
        # then, so the profile is read before the next one overwrites it.
        con.execute("SET profiling_coverage = 'ALL'")
        con.execute("SET enable_profiling = 'json'")
        try:
            result = run_sql(con, sql, params)
            profile = json.loads(out.read_text())
        finally:
            con.execute("PRAGMA disable_profiling")
            con.execute("RESET profiling_coverage")
    read = total = 0
    stack = [profile]
    while stack:
        node = stack.pop()
        info = node.get("extra_info", {})
        scanning = info.get("Scanning Files")  # "read/total" when pruning applied
        if scanning:
            done, _, seen = str(scanning).partition("/")
            read, total = read + int(done), total + int(seen)
        elif "Total Files Read" in info:
            n = int(info["Total Files Read"])
            read, total = read + n, total + n
        stack.extend(node.get("children", []))
    return result, Scan(read, total)


def write_result(result: pa.Table, fmt: OutputFormat, out: Path | None, stream: Any) -> None:
    """A result as an aligned text table, CSV or Parquet (to `out`, or `stream` for text)."""
    if fmt == "parquet":
        if out is None:
            raise QueryError("Parquet output needs --out FILE")
        pq.write_table(result, out, compression="zstd")
        return
    if fmt == "csv":
        text = _csv(result)
        if out is not None:
            out.write_text(text)
        else:
            stream.write(text)
        return
    text = format_table(result)
    if out is not None:
        out.write_text(text)
    else:
        stream.write(text)


def _csv(result: pa.Table) -> str:
    # Arrow quotes every header name; a plain header is friendlier to spreadsheets and shells.
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    pacsv.write_csv(result, sink, options)
    header = ",".join(f'"{n}"' if ("," in n or '"' in n) else n for n in result.column_names)
    body: bytes = sink.getvalue().to_pybytes()
    return header + "\n" + body.decode()


def format_table(result: pa.Table, max_rows: int = 1000) -> str:
    names = result.column_names
    rows = [
        ["" if v is None else str(v) for v in row.values()]
        for row in result.slice(0, max_rows).to_pylist()
    ]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(names), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if result.num_rows > max_rows:
        out.append(f"... {result.num_rows - max_rows} more rows (use --format csv or parquet)")
    out.append(f"({result.num_rows} rows)")
    return "\n".join(out) + "\n"
