"""`railpulse query "SQL"`: SQL over the lake (DuckDB over the Parquet objects) or the warehouse.

Tables: `telemetry` (one row per reading; partition columns `dt` DATE and `hour` INTEGER),
`alerts`, `alarms`, `rejects` (dead letters with their raw bytes; partition column `dt`), and the
views `train_channel_hourly`, `alert_lifecycle`, `data_completeness`. Filter on `dt` (and `hour`)
to read only those partitions:

    railpulse query "SELECT channel, avg(value) FROM telemetry
                     WHERE train = 'train-007' AND dt = '2026-05-29' GROUP BY 1" --explain
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from railpulse_cli.commands._archive_settings import (
    add_lake_arguments,
    archive_settings,
    checked_lake,
    output_format,
)
from railpulse_cli.errors import UsageError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="run SQL over the lake (DuckDB) or, with --warehouse, the warehouse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sql", help="the SQL to run")
    parser.add_argument(
        "--warehouse", action="store_true", help="run on the warehouse (PostgreSQL/Redshift)"
    )
    parser.add_argument(
        "--format",
        choices=["table", "csv", "parquet"],
        help="output format (default: table, or what --out's extension says)",
    )
    parser.add_argument(
        "--out", type=Path, help="write the result to FILE (.csv, .parquet or .txt)"
    )
    add_lake_arguments(parser)
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also print how many lake objects the query read (stderr); it runs once",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.share import query

    fmt = args.format
    if args.out is not None:
        implied = output_format(args.out, ("csv", "parquet", "table"))
        if fmt is not None and fmt != implied:
            raise UsageError(
                f"--format {fmt} and --out {args.out} disagree", "drop one, or make them match"
            )
        fmt = implied
    elif fmt == "parquet":
        raise UsageError("Parquet output needs --out FILE.parquet")
    lake = checked_lake(args.lake)
    settings = archive_settings(args, warehouse=args.warehouse, lake=lake)
    query(
        settings,
        args.sql,
        fmt=fmt or "table",
        out=args.out,
        stream=sys.stdout,
        warehouse=args.warehouse,
        lake=lake,
        explain=sys.stderr if args.explain else None,
    )
    return 0
