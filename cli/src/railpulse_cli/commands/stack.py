"""`railpulse stack up|down|status`: the local stack (moto, mosquitto, PostgreSQL, IoT stand-in)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from railpulse_cli.progress import Progress

if TYPE_CHECKING:
    from railpulse_devstack.stack import UpResult

__all__ = ["register", "up_with_progress"]


def up_with_progress(prog: str = "railpulse stack up") -> UpResult:
    """`stack.up()`, saying on stderr which components are ready while it waits."""
    from railpulse_devstack import stack

    with Progress(prog, detail=_ready_components) as progress:
        progress.step("starting the local stack (moto, mosquitto, PostgreSQL, IoT stand-in)")
        result = stack.up()
        progress.done("stack ready")
    return result


def _ready_components() -> str:
    from railpulse_devstack import stack

    rows = stack.status()
    ready = [row.name for row in rows if row.running]
    waiting = [row.name for row in rows if not row.running]
    return f"ready: {', '.join(ready) or 'none'}" + (
        f"; waiting for {', '.join(waiting)}" if waiting else ""
    )


def _up(args: argparse.Namespace) -> int:
    from railpulse_devstack import stack

    result = up_with_progress()
    config = stack.load_config()
    if result.started:
        print(f"stack ready in {result.seconds:.1f} s (started: {', '.join(result.started)})")
    else:
        print(f"stack already running (checked in {result.seconds:.1f} s)")
    _print_status()
    print(f"env file: {config.env_file}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from railpulse_devstack import stack
    from railpulse_devstack.errors import StackError

    try:
        stopped = stack.down()
    except StackError as err:
        print(f"railpulse stack down: {err}", file=sys.stderr)
        return 1
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _print_status() -> bool:
    from railpulse_devstack import stack

    rows = stack.status()
    print(f"{'component':<10} {'state':<8} {'pid':>7} {'port':>6}  log")
    for row in rows:
        state = "running" if row.running else ("starting" if row.pid else "stopped")
        print(f"{row.name:<10} {state:<8} {row.pid or '-':>7} {row.port:>6}  {row.log}")
    return all(row.running for row in rows)


def _status(args: argparse.Namespace) -> int:
    return 0 if _print_status() else 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="the local stack: up, down, status",
        description="Start, stop or inspect the local stack. State and logs live under "
        ".local/stack/ (RAILPULSE_STACK_DIR); ports: RAILPULSE_MOTO_PORT (4566), "
        "RAILPULSE_MOTO_S3_PORT (4567), RAILPULSE_MQTT_PORT (8883), RAILPULSE_PG_PORT (5433), RAILPULSE_IOT_DATA_PORT (4580).",
    )
    sub = parser.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    sub.add_parser("up", help="start what is not running and wait until ready").set_defaults(
        func=_up
    )
    sub.add_parser("down", help="stop everything").set_defaults(func=_down)
    sub.add_parser("status", help="what runs where (exit 3 if not all running)").set_defaults(
        func=_status
    )
