"""`railpulse-archiver`: two KCL MultiLangDaemons (telemetry and events), one process to stop.

Each daemon is its own KCL application (its own lease table) and starts
`python -m railpulse_archiver.processor` per shard with `RAILPULSE_ARCHIVER_STREAM` set for its
stream. SIGTERM/SIGINT are forwarded to both; the daemons then shut their processors down
gracefully (flush, then checkpoint) within `shutdownGraceMillis`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import structlog

from railpulse_archiver.settings import ArchiverSettings
from railpulse_shared.entrypoint import EXIT_CONFIG, service_parser, service_settings
from railpulse_shared.log import configure_logging
from railpulse_shared.metric_names import WAREHOUSE_STREAM
from railpulse_shared.metrics import Metrics, sink_from_url
from railpulse_shared.multilang import kcl_application, start_daemon

__all__ = ["APPLICATIONS", "main"]

logger = structlog.get_logger()

APPLICATIONS = {
    "telemetry": "railpulse-archiver-telemetry",
    "events": "railpulse-archiver-events",
}


def start_daemons(
    settings: ArchiverSettings, only: str | None = None
) -> dict[str, subprocess.Popen[bytes]]:
    """One daemon per stream (`only`: just that one, `telemetry` or `events`)."""
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    for which, application in APPLICATIONS.items():
        if only is not None and which != only:
            continue
        stream = settings.stream_telemetry if which == "telemetry" else settings.stream_events
        app = kcl_application(
            settings,
            application_name=application,
            stream_name=stream,
            processor_module="railpulse_archiver.processor",
        )
        env = {**os.environ, "RAILPULSE_ARCHIVER_STREAM": which}
        # The daemon's log goes to our stderr (inherited), never to our stdout.
        daemons[which] = start_daemon(
            app, Path(settings.kcl_state_dir), log=sys.stderr.buffer, env=env
        )
        logger.info(
            "daemon_started", stream=stream, application=application, pid=daemons[which].pid
        )
    return daemons


def _load(settings: ArchiverSettings, metrics: Metrics) -> None:
    from railpulse_archiver.share import load_warehouse

    try:
        load_warehouse(settings, metrics=metrics)
    except Exception:
        # Best effort, on a timer: whatever failed (the warehouse, S3, DuckDB), the ledger makes
        # the next attempt safe and the archive is unaffected. It must never take down this
        # process, which supervises the KCL daemons and forwards SIGTERM to them.
        logger.exception("warehouse_load_failed")


def _parse(argv: list[str] | None) -> str | None:
    parser = service_parser(
        "railpulse-archiver",
        "Archive Kinesis telemetry and events into the Parquet lake (S3, dt=/hour= partitions) "
        "with its Glue catalogue, and optionally load the warehouse on a timer. Runs one KCL "
        "MultiLangDaemon per stream; SIGTERM stops both gracefully.",
    )
    parser.add_argument(
        "--stream",
        help="archive only this stream (its name, or `telemetry` / `events`); default both",
    )
    stream: str | None = parser.parse_args(argv).stream
    return stream


def _which(stream: str | None, settings: ArchiverSettings) -> str | None:
    if stream is None:
        return None
    names = {settings.stream_telemetry: "telemetry", settings.stream_events: "events"}
    names.update({key: key for key in APPLICATIONS})
    if stream not in names:
        print(
            f"railpulse-archiver: --stream {stream}: archives "
            f"{settings.stream_telemetry!r} or {settings.stream_events!r}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CONFIG)
    return names[stream]


def main(argv: list[str] | None = None) -> int:
    stream = _parse(argv)
    settings = service_settings("railpulse-archiver", ArchiverSettings)
    only = _which(stream, settings)
    configure_logging(settings.log_level, service=settings.service)
    daemons = start_daemons(settings, only)
    # This process's stdout is no KCL protocol channel (the daemons' children have their own).
    metrics = Metrics(
        settings.metrics_namespace,
        {"service": settings.service, "stream": WAREHOUSE_STREAM},
        sink_from_url(settings.metrics_sink),
    )
    stopping = False  # told to stop (SIGTERM/SIGINT): a clean exit

    def stop_daemons(signum: int) -> None:
        for which, daemon in daemons.items():
            if daemon.poll() is None:
                logger.info("forwarding_signal", signal=signal.Signals(signum).name, daemon=which)
                daemon.send_signal(signum)

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        stop_daemons(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # If one daemon dies on its own, stop the other too: the task restarts as a whole.
    next_load = time.monotonic() + settings.warehouse_load_every_s
    try:
        while all(d.poll() is None for d in daemons.values()):
            if (
                settings.warehouse_load_every_s > 0
                and time.monotonic() >= next_load
                and not stopping
            ):
                _load(settings, metrics)
                next_load = time.monotonic() + settings.warehouse_load_every_s
            time.sleep(0.5)
    except BaseException:
        # Whatever ends this loop early, the daemons (in their own sessions) must not outlive it.
        stop_daemons(signal.SIGTERM)
        raise
    if not stopping:
        # A daemon died unasked: stop the other and exit non-zero, so that ECS replaces the task.
        logger.error("daemon_exited", codes={k: d.returncode for k, d in daemons.items()})
        stop_daemons(signal.SIGTERM)
    deadline = time.monotonic() + settings.kcl_shutdown_grace_ms / 1000 + 10
    for daemon in daemons.values():
        try:
            daemon.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
