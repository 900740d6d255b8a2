"""`railpulse load`: load the lake's new objects into the warehouse (idempotent: a ledger).

PostgreSQL locally (bulk COPY), Redshift in AWS (`COPY ... FORMAT AS PARQUET` from S3), chosen by
`RAILPULSE_WAREHOUSE_DIALECT`. Safe to re-run at any time: loaded objects are never loaded again.
An object the warehouse refuses is set aside (table `archive_setaside`, with the error) and the
rest is loaded; `--retry-set-aside` tries those objects again after a fix.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from railpulse_cli.commands._archive_settings import (
    add_lake_arguments,
    archive_settings,
    checked_lake,
)
from railpulse_cli.progress import Progress

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load new lake objects into the warehouse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_lake_arguments(parser)
    parser.add_argument(
        "--retry-set-aside",
        action="store_true",
        help="also try the objects earlier loads set aside (after fixing them or the warehouse)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.share import lake_root, load_warehouse, open_lake

    lake = checked_lake(args.lake)
    settings = archive_settings(args, warehouse=True, lake=lake)
    with Progress("railpulse load") as progress:
        if lake is not None:
            open_lake(settings, lake).close()  # a --lake with no lake in it is a mistake
        progress.step(f"loading new objects of {lake_root(settings, lake)} into the warehouse")
        report = load_warehouse(settings, lake=lake, retry_set_aside=args.retry_set_aside)
        progress.done(
            f"loaded {len(report.loaded)} objects ({report.rows} rows); {report.skipped} already "
            f"loaded; {len(report.set_aside)} set aside now, {report.held} set aside before"
        )
    for key, error in report.set_aside.items():
        print(f"  set aside {key}: {error}", file=sys.stderr)
    return 1 if report.set_aside else 0
