"""`railpulse report --from ... --to ... --out report.html`: fleet health for business users.

Alerts by kind, trains affected, alarm handling times and data completeness, as one HTML page,
from the warehouse (or, with --from-lake, from the lake directly).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="fleet health over a period as an HTML page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, help="start, inclusive (ISO 8601)")
    parser.add_argument("--to", dest="end", required=True, help="end, exclusive (ISO 8601)")
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    parser.add_argument(
        "--from-lake", action="store_true", help="compute from the lake, not the warehouse"
    )
    parser.add_argument("--lake", help="lake root instead of s3://$RAILPULSE_BUCKET_LAKE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.errors import ArchiverError
    from railpulse_archiver.share import fleet_report, parse_time
    from railpulse_cli.commands._archive_settings import archive_settings

    settings = archive_settings()
    try:
        summary = fleet_report(
            settings,
            parse_time(args.start),
            parse_time(args.end),
            args.out,
            lake=args.lake,
            from_lake=args.from_lake,
        )
    except (ArchiverError, ValueError) as exc:
        print(f"railpulse report: {exc}", file=sys.stderr)
        return 1
    print(
        f"report written to {args.out}: {summary['alerts']} alerts, "
        f"{summary['trains_with_alerts']} trains affected",
        file=sys.stderr,
    )
    return 0
