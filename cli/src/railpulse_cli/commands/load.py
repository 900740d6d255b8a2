"""`railpulse load`: load the lake's new objects into the warehouse (idempotent: a ledger).

PostgreSQL locally (bulk COPY), Redshift in AWS (`COPY ... FORMAT AS PARQUET` from S3), chosen by
`RAILPULSE_WAREHOUSE_DIALECT`. Safe to re-run at any time: loaded objects are never loaded again.
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from railpulse_archiver.errors import ArchiverError
    from railpulse_archiver.share import load_warehouse
    from railpulse_cli.commands._archive_settings import archive_settings

    settings = archive_settings()
    try:
        loaded, skipped, rows = load_warehouse(settings, lake=args.lake)
    except ArchiverError as exc:
        print(f"railpulse load: {exc}", file=sys.stderr)
        return 1
    print(f"loaded {loaded} objects ({rows} rows); {skipped} already loaded", file=sys.stderr)
    return 0
