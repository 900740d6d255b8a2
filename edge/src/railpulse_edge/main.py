"""`railpulse-edge`: wiring of one train's agent (settings, logging, spool, link, source)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import structlog

from railpulse_edge.agent import AgentConfig, EdgeAgent
from railpulse_edge.settings import EdgeSettings, parse_settings
from railpulse_edge.sources import load_source
from railpulse_edge.spool import Spool
from railpulse_shared.contracts import ShadowAlert
from railpulse_shared.errors import RailpulseError
from railpulse_shared.log import configure_logging
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["main", "run"]

logger = structlog.get_logger()


def _display(thing: str, alert: ShadowAlert) -> None:
    """The onboard display hook: here, one line on stdout per new alert."""
    print(f"ALERT {thing} {alert.severity.name} {alert.alert_key} {alert.alarm_id} {alert.message}",
          flush=True)


async def run(settings: EdgeSettings) -> None:
    # Signal handlers first: a SIGTERM during start-up must also end with the spool closed.
    async with GracefulShutdown() as shutdown:
        spool = Spool(
            settings.spool_path,
            max_frames=settings.spool_max_frames,
            max_bytes=settings.spool_max_bytes,
            max_age_s=settings.spool_max_age_s,
            synchronous=settings.spool_sync,
        )
        try:
            agent = EdgeAgent(
                AgentConfig(
                    thing=settings.thing,
                    topic=settings.publish_topic,
                    backfill_max_bytes=settings.backfill_max_bytes,
                    backfill_rate=settings.backfill_rate,
                    backfill_window=settings.backfill_window,
                    shadow=settings.shadow,
                ),
                settings.link_config(),
                spool,
                on_alert=_display,
            )
            source = load_source(settings.source, settings.thing, settings.rate_hz)
            stats = spool.stats()
            logger.info("agent.start", thing=settings.thing, topic=settings.publish_topic,
                        next_seq=stats.next_seq, epoch=stats.epoch, spooled=stats.pending,
                        evicted=stats.evicted)
            agent_task = asyncio.create_task(agent.run(shutdown.event))
            await agent.run_source(source, settings.rate_hz, shutdown.event)
            await agent_task
        finally:
            stats = spool.stats()
            spool.close()
            logger.info("agent.stopped", thing=settings.thing, next_seq=stats.next_seq,
                        spooled=stats.pending, evicted=stats.evicted)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except (RailpulseError, ValueError) as exc:
        print(f"railpulse-edge: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service="edge")
    try:
        asyncio.run(run(settings))
    except RailpulseError as exc:
        logger.error("agent.failed", error=str(exc), error_type=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
