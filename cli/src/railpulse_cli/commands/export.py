"""`railpulse export --train T --from ... --to ... --out FILE`: one train's readings for analysis.

Every reading with its quality flag, the frame's position and speed, and the Kinesis position it
came from, in [from, to). `.parquet` (or `.pq`) writes Parquet (zstd), `.csv` CSV; any other
extension is refused. Times are ISO 8601, UTC unless they say otherwise; only the days in range
are read from the lake. A train with no readings in the range writes nothing and exits 3, naming
the trains that have some.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from railpulse_cli.commands._archive_settings import (
    add_lake_arguments,
    archive_settings,
    checked_lake,
    output_format,
    time_range,
)
from railpulse_cli.progress import Progress

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write one train's data over a period to CSV or Parquet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", required=True)
    parser.add_argument("--from", dest="start", required=True, help="start, inclusive (ISO 8601)")
    parser.add_argument("--to", dest="end", required=True, help="end, exclusive (ISO 8601)")
    parser.add_argument("--out", type=Path, required=True, help="FILE.parquet (or .pq) or FILE.csv")
    parser.add_argument("--warehouse", action="store_true", help="read from the warehouse instead")
    add_lake_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.query import write_result
    from railpulse_archiver.share import lake_root, select_train

    fmt = output_format(args.out, ("csv", "parquet"))
    start, end = time_range(args.start, args.end)
    lake = checked_lake(args.lake)
    settings = archive_settings(args, warehouse=args.warehouse, lake=lake)
    with Progress("railpulse export") as progress:
        where = "the warehouse" if args.warehouse else lake_root(settings, lake)
        progress.step(f"reading {args.train} from {where}, {args.start} to {args.end}")
        result = select_train(settings, args.train, start, end, warehouse=args.warehouse, lake=lake)
        progress.step(f"writing {result.num_rows:,} readings to {args.out}")
        write_result(result, "parquet" if fmt == "parquet" else "csv", args.out, None)
        progress.done(f"{result.num_rows:,} readings of {args.train} written to {args.out}")
    return 0
