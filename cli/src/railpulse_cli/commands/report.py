"""`railpulse report --from ... --to ... --out report.html`: fleet health for business users.

Alerts by kind, trains affected, alarm handling times and data completeness, as one HTML page,
from the warehouse (or, with --from-lake, from the lake directly).
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
        "report",
        help="fleet health over a period as an HTML page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, help="start, inclusive (ISO 8601)")
    parser.add_argument("--to", dest="end", required=True, help="end, exclusive (ISO 8601)")
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="FILE.html")
    parser.add_argument(
        "--from-lake", action="store_true", help="compute from the lake, not the warehouse"
    )
    add_lake_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.share import fleet_report, lake_root

    output_format(args.out, ("html",))
    start, end = time_range(args.start, args.end)
    lake = checked_lake(args.lake)
    settings = archive_settings(args, warehouse=not args.from_lake, lake=lake)
    with Progress("railpulse report") as progress:
        where = lake_root(settings, lake) if args.from_lake else "the warehouse"
        progress.step(f"computing fleet health from {where}, {args.start} to {args.end}")
        summary = fleet_report(settings, start, end, args.out, lake=lake, from_lake=args.from_lake)
        progress.done(
            f"report written to {args.out}: {summary['alerts']} alerts, "
            f"{summary['trains_with_alerts']} trains affected"
        )
    return 0
