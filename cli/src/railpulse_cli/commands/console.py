"""`railpulse console`: the read-only fleet console (the railpulse-console service), locally.

It reads the running local stack's env file when there is one, so `railpulse stack up` then
`railpulse console` is all it takes; variables already set in the environment win.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

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
    parser.set_defaults(func=run)


def _stack_env() -> dict[str, str]:
    from railpulse_devstack.env import stack_env
    from railpulse_devstack.errors import StackNotRunningError

    try:
        return stack_env()
    except StackNotRunningError:
        return {}


def run(args: argparse.Namespace) -> int:
    for key, value in _stack_env().items():
        os.environ.setdefault(key, value)
    from railpulse_console.main import main

    return main(["--host", args.host, "--port", str(args.port)])
