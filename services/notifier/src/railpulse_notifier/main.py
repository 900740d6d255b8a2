"""`railpulse-notifier`: settings once, logging once, run until SIGTERM, drain, exit."""

from __future__ import annotations

import asyncio

from railpulse_notifier.service import run_service
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.config import load_settings
from railpulse_shared.log import configure_logging
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["main"]


async def _run(settings: NotifierSettings) -> None:
    async with GracefulShutdown() as shutdown:
        await run_service(settings, shutdown)


def main() -> None:
    settings = load_settings(NotifierSettings)
    configure_logging(settings.log_level, service=settings.service)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
