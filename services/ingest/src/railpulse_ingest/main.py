"""`railpulse-ingest`: start the KCL MultiLangDaemon on `telemetry-raw` (one processor per shard).

In a container the JVM replaces this process (it receives SIGTERM and shuts the processors down
within `shutdownGraceMillis`, each checkpointing what it finished).
"""

from __future__ import annotations

import sys
from pathlib import Path

import structlog

from railpulse_ingest.settings import IngestSettings
from railpulse_shared.entrypoint import service_parser, service_settings
from railpulse_shared.log import configure_logging
from railpulse_shared.multilang import KclApplication, exec_daemon, kcl_application

__all__ = ["application", "main"]

logger = structlog.get_logger()


def application(settings: IngestSettings) -> KclApplication:
    return kcl_application(
        settings,
        application_name=settings.kcl_application_name,
        stream_name=settings.stream_raw,
        processor_module="railpulse_ingest.processor",
    )


def main(argv: list[str] | None = None) -> int:
    service_parser(
        "railpulse-ingest",
        "Validate, de-duplicate and normalise raw telemetry from Kinesis telemetry-raw; forward "
        "accepted frames to Kinesis telemetry and dead-letter the rest (SQS rejects, with the "
        "reason and the raw bytes). Runs the KCL MultiLangDaemon, one processor per shard.",
    ).parse_args(argv)
    settings = service_settings("railpulse-ingest", IngestSettings)
    configure_logging(settings.log_level, service=settings.service)
    app = application(settings)
    logger.info("starting", stream=settings.stream_raw, worker_id=app.worker_id)
    exec_daemon(app, Path(settings.kcl_state_dir))
    return 0  # not reached: the daemon replaced this process


if __name__ == "__main__":
    sys.exit(main())
