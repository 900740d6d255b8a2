"""`railpulse-archiver-compact`: one compaction run, the task the deployment's schedule runs.

EventBridge Scheduler starts it as an ECS task every hour (`deploy/.../services/compaction.py`);
it compacts every partition of yesterday and today (UTC) that holds new small objects (a
partition with nothing new costs one listing), points the Glue partitions at the new
generations, deletes objects superseded more than an hour ago, and exits 0 (1 when the lake
cannot be reached or a run fails: the next run redoes it, the partition state makes that safe).
`railpulse compact --day D` does the same for one day from a laptop.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

import structlog

from railpulse_archiver.settings import ArchiverSettings
from railpulse_shared.entrypoint import add_version_argument, service_settings
from railpulse_shared.log import configure_logging

__all__ = ["days_to_compact", "main"]

logger = structlog.get_logger()


def days_to_compact(now: datetime) -> list[str]:
    """Yesterday (its last hours settle after midnight) and today, UTC."""
    today = now.astimezone(UTC).date()
    return [(today - timedelta(days=1)).isoformat(), today.isoformat()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="railpulse-archiver-compact",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(parser, "railpulse-archiver")
    parser.parse_args(argv)
    settings = service_settings("railpulse-archiver-compact", ArchiverSettings)
    configure_logging(settings.log_level, service=settings.service)
    from railpulse_archiver.share import compact_lake

    try:
        for day in days_to_compact(datetime.now(UTC)):
            results = compact_lake(settings, day)
            logger.info(
                "day_compacted",
                day=day,
                partitions=sum(1 for r in results if r.folded),
                objects_folded=sum(r.sources for r in results if r.folded),
                deleted=sum(r.deleted for r in results),
            )
    except Exception as exc:
        logger.exception("compaction_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
