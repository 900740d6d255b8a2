"""The start of every service's console script, the same for all of them.

`service_parser` gives `--help` and `--version` (both print and exit 0, before any settings are
read or anything starts). `service_settings` loads the service's settings once; a variable that is
missing or malformed is one line on stderr naming it (`railpulse-ingest: AWS_REGION: ...`) and
exit 2, never a traceback.

A service must be told where it runs: `AWS_REGION` (in AWS; the deployment sets it) or
`AWS_ENDPOINT_URL` (the local stack; its env file has both). Without either it would call AWS in
a default region with whatever credentials the machine has, so it refuses instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn, TypeVar

import msgspec

from railpulse_shared.config import load_settings
from railpulse_shared.errors import ConfigError

__all__ = [
    "EXIT_CONFIG",
    "add_version_argument",
    "require_target",
    "service_parser",
    "service_settings",
]

EXIT_CONFIG = 2
"""The exit code of a service whose settings are missing or malformed."""

_S = TypeVar("_S", bound=msgspec.Struct)

_CONFIGURED_BY = (
    "Configured by environment variables: RAILPULSE_<FIELD> for its settings, the standard AWS_* "
    "for AWS (AWS_REGION in AWS, or AWS_ENDPOINT_URL for the local stack, whose env file "
    "`railpulse stack up` writes)."
)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def add_version_argument(parser: argparse.ArgumentParser, distribution: str) -> None:
    """`--version`: `<prog> <the installed version of distribution>`, then exit 0."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version(distribution)}")


def service_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with `--help` and `--version` (of the distribution named `prog`)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=_CONFIGURED_BY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(parser, prog)
    return parser


def require_target(env: Mapping[str, str]) -> None:
    """`ConfigError` unless the environment says where AWS is (a region, or a local endpoint)."""
    if not env.get("AWS_REGION") and not env.get("AWS_ENDPOINT_URL"):
        raise ConfigError(
            "AWS_REGION",
            "is required but not set (the AWS region to run in; for the local stack set "
            "AWS_ENDPOINT_URL and the rest of its env file, from `railpulse stack up`)",
        )


def service_settings(
    prog: str, cls: type[_S], env: Mapping[str, str] | None = None, **overrides: object
) -> _S:
    """`cls` from the environment, or one line naming the bad variable and exit 2."""
    source = os.environ if env is None else env
    try:
        require_target(source)
        return load_settings(cls, source, **overrides)
    except ConfigError as exc:
        _refuse(prog, exc)


def _refuse(prog: str, exc: ConfigError) -> NoReturn:
    print(f"{prog}: {exc}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)
