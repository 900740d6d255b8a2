"""`railpulse compact`: rewrite a day's (or an hour's) small lake objects into a few large files.

Each partition's live objects (the archiver's flush objects and any earlier compaction) become a
new generation of files of about `--target-mb` each, committed by one PUT of the partition's state:
every reader (`railpulse query`, the warehouse load, Athena through the Glue partition's location)
sees each row exactly once before, during and after it. Safe to re-run: a partition with nothing
new is left alone; objects superseded more than `--grace-s` ago are deleted. In AWS the same
command runs as a scheduled task (`railpulse-archiver-compact`).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from railpulse_cli.commands._archive_settings import (
    add_lake_arguments,
    archive_settings,
    checked_lake,
)
from railpulse_cli.errors import UsageError
from railpulse_cli.progress import Progress

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compact",
        help="compact a day's small lake objects into large files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--day", required=True, help="the day to compact, YYYY-MM-DD (UTC)")
    parser.add_argument("--hour", help="only this hour of it, HH (telemetry)")
    parser.add_argument(
        "--table", action="append", choices=["telemetry", "alerts", "alarms"], help="(repeatable)"
    )
    parser.add_argument("--target-mb", type=float, default=128.0, help="file size aimed at")
    parser.add_argument(
        "--grace-s", type=float, default=3600.0, help="keep superseded objects this long"
    )
    add_lake_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.share import compact_lake, lake_root

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.day):
        raise UsageError(f"--day {args.day}: not YYYY-MM-DD")
    if args.hour is not None and not re.fullmatch(r"\d{2}", args.hour):
        raise UsageError(f"--hour {args.hour}: not HH")
    lake = checked_lake(args.lake)
    settings = archive_settings(args, lake=lake)
    with Progress("railpulse compact") as progress:
        progress.step(f"compacting {args.day} of {lake_root(settings, lake)}")
        results = compact_lake(
            settings,
            args.day,
            hour=args.hour,
            tables=args.table,
            target_bytes=int(args.target_mb * 1024 * 1024),
            grace_s=args.grace_s,
            lake=lake,
        )
        done = [r for r in results if r.folded]
        progress.done(
            f"{len(done)} of {len(results)} partitions compacted: "
            f"{sum(r.sources for r in done)} objects into {sum(len(r.objects) for r in done)}, "
            f"{sum(r.rows for r in done)} rows; {sum(r.deleted for r in results)} old objects deleted"
        )
    return 0
