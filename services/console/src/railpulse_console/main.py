"""`railpulse-console`: the console service (Starlette under uvicorn), configured from the env."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from types import FrameType

import uvicorn

from railpulse_console.app import create_app
from railpulse_console.console import Console
from railpulse_console.settings import ConsoleSettings
from railpulse_shared.entrypoint import add_version_argument, service_settings
from railpulse_shared.log import configure_logging

__all__ = ["bind", "main", "serve"]


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


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, taken before the console says it serves (uvicorn is handed it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: ConsoleSettings, sock: socket.socket | None = None) -> None:
    configure_logging(settings.log_level, service=settings.service)
    if sock is None:
        sock = bind(settings.host, settings.port)
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
    _Server(config, console).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="railpulse-console",
        description="A read-only, real-time web view of the fleet: trains, channels, anomalies, "
        "alarms and data health. Configured by RAILPULSE_* and AWS_* environment variables.",
    )
    add_version_argument(parser, "railpulse-console")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = service_settings("railpulse-console", ConsoleSettings, None, **overrides)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        print(
            f"railpulse-console: cannot listen on {settings.host}:{settings.port}: "
            + ("the port is taken by another process" if taken else exc.strerror or str(exc))
            + "; pick another with --port (or RAILPULSE_PORT)",
            file=sys.stderr,
        )
        return 1
    print(f"railpulse console on http://{settings.host}:{settings.port}", file=sys.stderr)
    serve(settings, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
