"""`railpulse report --from ... --to ... --out report.html`: fleet health for business users.

Alerts per day by kind, the top alerting channels, data completeness per train and day, trains
affected and alarm handling times, as one self-contained HTML page with charts, and the same
page as a PDF beside it (report.pdf, printed by headless Chromium; --no-pdf skips it), from the
warehouse (or, with --from-lake, from the lake directly).
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
        help="fleet health over a period as an HTML page and a PDF",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="start", required=True, help="start, inclusive (ISO 8601)")
    parser.add_argument("--to", dest="end", required=True, help="end, exclusive (ISO 8601)")
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="FILE.html")
    parser.add_argument(
        "--from-lake", action="store_true", help="compute from the lake, not the warehouse"
    )
    parser.add_argument(
        "--no-pdf", action="store_true", help="write only the HTML, not FILE.pdf beside it"
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
        pdf = None if args.no_pdf else args.out.with_suffix(".pdf")
        summary = fleet_report(
            settings, start, end, args.out, lake=lake, from_lake=args.from_lake, pdf=pdf
        )
        written = f"{args.out} and {pdf}" if pdf else str(args.out)
        progress.done(
            f"report written to {written}: {summary['alerts']} alerts, "
            f"{summary['trains_with_alerts']} trains affected"
        )
    return 0
