"""`railpulse console`: the read-only fleet console (the railpulse-console service), locally.

It reads the running local stack's env file, so `railpulse stack up` then `railpulse console` is
all it takes; without a stack it refuses to start unless --aws names real AWS (see `railpulse
--help`). A port already taken is said at once, before the console claims to serve.
"""

from __future__ import annotations

import argparse
from typing import Any

from railpulse_cli.target import add_target_argument, resolve_env

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="the read-only fleet console in a browser (default http://127.0.0.1:8080)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    add_target_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_env(args.aws)  # into os.environ, which the console's settings read
    from railpulse_console.main import main

    return main(["--host", args.host, "--port", str(args.port)])
