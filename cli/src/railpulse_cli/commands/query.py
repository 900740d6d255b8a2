"""`railpulse query "SQL"`: SQL over the lake (DuckDB over the Parquet objects) or the warehouse.

Tables: `telemetry` (one row per reading; partition columns `dt` DATE and `hour` INTEGER),
`alerts`, `alarms` (partition column `dt`), and the views `train_channel_hourly`,
`alert_lifecycle`, `data_completeness`. Filter on `dt` (and `hour`) to read only those partitions:

    railpulse query "SELECT channel, avg(value) FROM telemetry
                     WHERE train = 'train-007' AND dt = '2026-05-29' GROUP BY 1" --explain
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    parser.add_argument("--format", choices=["table", "csv", "parquet"], default="table")
    parser.add_argument("--out", type=Path, help="write the result to FILE (needed for parquet)")
    parser.add_argument(
        "--lake", help="lake root instead of s3://$RAILPULSE_BUCKET_LAKE (a folder works)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print how many objects were read (stderr)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.errors import ArchiverError
    from railpulse_archiver.share import query
    from railpulse_cli.commands._archive_settings import archive_settings

    settings = archive_settings()
    try:
        query(
            settings,
            args.sql,
            fmt=args.format,
            out=args.out,
            stream=sys.stdout,
            warehouse=args.warehouse,
            lake=args.lake,
            explain=sys.stderr if args.explain else None,
        )
    except ArchiverError as exc:
        print(f"railpulse query: {exc}", file=sys.stderr)
        return 1
    return 0
