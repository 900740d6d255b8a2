"""`railpulse export --train T --from ... --to ... --out FILE`: one train's readings for analysis.

Every reading with its quality flag, the frame's position and speed, and the Kinesis position it
came from, in [from, to). `.parquet` writes Parquet (zstd), anything else CSV. Times are ISO 8601,
UTC unless they say otherwise; only the days in range are read from the lake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    parser.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv")
    parser.add_argument("--warehouse", action="store_true", help="read from the warehouse instead")
    parser.add_argument("--lake", help="lake root instead of s3://$RAILPULSE_BUCKET_LAKE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.errors import ArchiverError
    from railpulse_archiver.share import export_train, parse_time
    from railpulse_cli.commands._archive_settings import archive_settings

    settings = archive_settings()
    try:
        rows = export_train(
            settings,
            args.train,
            parse_time(args.start),
            parse_time(args.end),
            args.out,
            warehouse=args.warehouse,
            lake=args.lake,
        )
    except (ArchiverError, ValueError) as exc:
        print(f"railpulse export: {exc}", file=sys.stderr)
        return 1
    print(f"{rows} readings of {args.train} written to {args.out}", file=sys.stderr)
    return 0
