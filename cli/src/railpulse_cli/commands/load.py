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

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load new lake objects into the warehouse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lake", help="lake root instead of s3://$RAILPULSE_BUCKET_LAKE")
    parser.add_argument(
        "--retry-set-aside",
        action="store_true",
        help="also try the objects earlier loads set aside (after fixing them or the warehouse)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.errors import ArchiverError
    from railpulse_archiver.share import load_warehouse
    from railpulse_cli.commands._archive_settings import archive_settings

    settings = archive_settings()
    try:
        report = load_warehouse(settings, lake=args.lake, retry_set_aside=args.retry_set_aside)
    except ArchiverError as exc:
        print(f"railpulse load: {exc}", file=sys.stderr)
        return 1
    print(
        f"loaded {len(report.loaded)} objects ({report.rows} rows); {report.skipped} already "
        f"loaded; {len(report.set_aside)} set aside now, {report.held} set aside before",
        file=sys.stderr,
    )
    for key, error in report.set_aside.items():
        print(f"  set aside {key}: {error}", file=sys.stderr)
    return 1 if report.set_aside else 0
