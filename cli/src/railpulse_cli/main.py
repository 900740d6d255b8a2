"""The `railpulse` command: one entry point, one sub-command per module in `commands/`.

Each module in `railpulse_cli.commands` defines `register(subparsers)`, which adds its
sub-command and sets `func` (taking the parsed `argparse.Namespace`, returning an exit code).
Adding a command is adding a file; nothing here changes. Every known error, whichever command
raised it, is turned into one line with a hint and an exit code here (`railpulse_cli.errors`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from railpulse_cli import commands
from railpulse_cli.errors import failure
from railpulse_cli.target import TARGET_HELP
from railpulse_shared.entrypoint import add_version_argument

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="railpulse",
        description="railpulse: collect a train fleet's telemetry, detect anomalies, "
        "tell the train, and share the data.",
        epilog=f"{TARGET_HELP}. Exit codes: 0 done, 1 failed, 2 wrong usage or settings, "
        "3 nothing matched.",
    )
    add_version_argument(parser, "railpulse-cli")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = f"railpulse {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        known = failure(exc)
        if known is None:
            raise
        print(known.line(prog), file=sys.stderr)
        return known.code


if __name__ == "__main__":
    sys.exit(main())
