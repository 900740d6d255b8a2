"""`railpulse-console`: the console service (Starlette under uvicorn), configured from the env."""

from __future__ import annotations

import argparse
import sys
from types import FrameType

import uvicorn

from railpulse_console.app import create_app
from railpulse_console.console import Console
from railpulse_console.settings import ConsoleSettings
from railpulse_shared.config import load_settings
from railpulse_shared.errors import ConfigError
from railpulse_shared.log import configure_logging

__all__ = ["main", "serve"]


class _Server(uvicorn.Server):
    """uvicorn, telling the console at once when SIGTERM/SIGINT arrives.

    uvicorn waits for open responses before the app's shutdown runs, and an event stream never
    ends by itself: the console's event streams watch `request_stop` and close within a second,
    so a stop (Fargate's SIGTERM) is clean and quick.
    """

    def __init__(self, config: uvicorn.Config, console: Console) -> None:
        super().__init__(config)
        self.console = console

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.console.request_stop()
        super().handle_exit(sig, frame)


def serve(settings: ConsoleSettings) -> None:
    configure_logging(settings.log_level, service=settings.service)
    console = Console(settings)
    config = uvicorn.Config(
        create_app(console),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # a backstop: the streams end on their own first
        proxy_headers=False,
    )
    _Server(config, console).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="railpulse-console",
        description="A read-only, real-time web view of the fleet: trains, channels, anomalies, "
        "alarms and data health. Configured by RAILPULSE_* and AWS_* environment variables.",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(ConsoleSettings, None, **overrides)
    except ConfigError as exc:
        print(f"railpulse-console: {exc}", file=sys.stderr)
        return 2
    print(f"railpulse console on http://{settings.host}:{settings.port}", file=sys.stderr)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
