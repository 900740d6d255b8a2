"""What the sharing commands (query, export, report, load) check before they touch anything.

The target (the local stack, AWS_ENDPOINT_URL, or real AWS when named) comes from
`railpulse_cli.target`; a lake in a local folder needs no target at all. File names, lake roots
and time ranges are checked here, before any network call, so a typo is one line and exit 2.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from railpulse_cli.errors import UsageError
from railpulse_cli.target import add_target_argument, resolve_env

if TYPE_CHECKING:
    from railpulse_archiver.settings import ArchiverSettings

__all__ = [
    "add_lake_arguments",
    "archive_settings",
    "checked_lake",
    "output_format",
    "time_range",
]

_LAKE_HELP = (
    "lake root instead of s3://$RAILPULSE_BUCKET_LAKE: another s3://bucket (through the target), "
    "or a local folder laid out like the bucket (no target needed)"
)
_FORMATS: dict[str, Literal["csv", "parquet", "table", "html"]] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "table",
    ".html": "html",
    ".htm": "html",
}


def add_lake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", help=_LAKE_HELP)
    add_target_argument(parser)


def checked_lake(lake: str | None) -> str | None:
    """`--lake` as given: an s3:// root, or an existing local folder (made absolute)."""
    if lake is None or lake.startswith("s3://"):
        return lake
    if "://" in lake:
        raise UsageError(f"--lake {lake}: only s3:// roots and local folders are lakes")
    folder = Path(lake).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--lake {lake}: no such folder", "give the folder that holds telemetry/")
    return str(folder.resolve())


def output_format(
    out: Path, allowed: tuple[str, ...], flag: str = "--out"
) -> Literal["csv", "parquet", "table", "html"]:
    """The format a file name asks for; an extension outside `allowed` formats is refused."""
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None or fmt not in allowed:
        accepted = ", ".join(k for k, v in _FORMATS.items() if v in allowed)
        raise UsageError(
            f"{flag} {out}: {out.suffix or 'no extension'} is not a format written here",
            f"use one of {accepted}",
        )
    if not out.parent.is_dir():
        raise UsageError(f"{flag} {out}: no folder {out.parent}")
    return fmt


def time_range(start_text: str, end_text: str) -> tuple[datetime, datetime]:
    from railpulse_archiver.share import parse_time

    try:
        start, end = parse_time(start_text), parse_time(end_text)
    except ValueError as exc:
        raise UsageError(
            f"{exc}", "times are ISO 8601, e.g. 2026-11-29 or 2026-11-29T06:00"
        ) from exc
    if start >= end:
        raise UsageError(
            f"--from {start_text} is not before --to {end_text}: the range is empty",
            "--from is inclusive, --to exclusive",
        )
    return start, end


def archive_settings(
    args: argparse.Namespace, *, warehouse: bool = False, lake: str | None = None
) -> ArchiverSettings:
    """The archiver's settings against the command's target (none needed for a folder lake)."""
    from railpulse_archiver.settings import ArchiverSettings
    from railpulse_shared.config import load_settings
    from railpulse_shared.log import configure_logging

    local_only = not warehouse and lake is not None and not lake.startswith("s3://")
    env = dict(os.environ) if local_only else resolve_env(args.aws)
    settings = load_settings(ArchiverSettings, env)
    configure_logging(settings.log_level)  # to stderr: stdout carries results
    return settings
