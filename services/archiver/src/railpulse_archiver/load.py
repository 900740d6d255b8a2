"""`railpulse-archiver-load`: one warehouse load, the task the deployment's schedule runs.

EventBridge Scheduler starts it as an ECS task every `warehouse_load_minutes` (see
`deploy/.../services/archiver.py`); it loads every lake object the warehouse's ledger does not
hold yet (`railpulse load` does the same from a laptop), counts what it loaded and what stays set
aside as EMF on stdout (`service=archiver`, `stream=warehouse`: the `warehouse-set-aside`
alarm's metric), and exits: 0 when nothing is set aside, 1 otherwise or when the warehouse or the
lake cannot be reached (the scheduler's next run tries again; the ledger makes that safe).
"""

from __future__ import annotations

import argparse
import sys

import structlog

from railpulse_archiver.settings import ArchiverSettings
from railpulse_shared.entrypoint import add_version_argument, service_settings
from railpulse_shared.log import configure_logging
from railpulse_shared.metric_names import WAREHOUSE_STREAM
from railpulse_shared.metrics import Metrics, sink_from_url

__all__ = ["main"]

logger = structlog.get_logger()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="railpulse-archiver-load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(parser, "railpulse-archiver")
    parser.add_argument(
        "--retry-set-aside", action="store_true", help="also retry objects set aside before"
    )
    args = parser.parse_args(argv)
    settings = service_settings("railpulse-archiver-load", ArchiverSettings)
    configure_logging(settings.log_level, service=settings.service)
    from railpulse_archiver.share import load_warehouse

    metrics = Metrics(
        settings.metrics_namespace,
        {"service": settings.service, "stream": WAREHOUSE_STREAM},
        sink_from_url(settings.metrics_sink),
    )
    try:
        report = load_warehouse(settings, retry_set_aside=args.retry_set_aside, metrics=metrics)
    except Exception as exc:
        logger.exception("warehouse_load_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 1 if report.set_aside else 0


if __name__ == "__main__":
    sys.exit(main())
