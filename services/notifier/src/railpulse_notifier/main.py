"""`railpulse-notifier`: settings once, logging once, run until SIGTERM, drain, exit."""

from __future__ import annotations

import asyncio
import sys

from railpulse_notifier.service import run_service
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.entrypoint import service_parser, service_settings
from railpulse_shared.log import configure_logging
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["main"]


async def _run(settings: NotifierSettings) -> None:
    async with GracefulShutdown() as shutdown:
        await run_service(settings, shutdown)


def main(argv: list[str] | None = None) -> int:
    service_parser(
        "railpulse-notifier",
        "Take anomalies from SQS alerts, run each alarm's lifecycle (DynamoDB), tell the train "
        "through its device shadow and record every step on Kinesis events; drains on SIGTERM.",
    ).parse_args(argv)
    settings = service_settings("railpulse-notifier", NotifierSettings)
    configure_logging(settings.log_level, service=settings.service)
    asyncio.run(_run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
