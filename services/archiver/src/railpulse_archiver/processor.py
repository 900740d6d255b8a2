"""The KCL child process: `python -m railpulse_archiver.processor`, one per leased shard.

`RAILPULSE_ARCHIVER_STREAM` (`telemetry` or `events`) says which stream's daemon started it, so one
module serves both. stdout is the MultiLangDaemon's protocol: logs and metrics go to stderr or the
CloudWatch agent.
"""

from __future__ import annotations

from typing import Any

from railpulse_archiver.handler import ArchiverHandler, stream_name
from railpulse_archiver.settings import ArchiverSettings
from railpulse_shared.config import load_settings
from railpulse_shared.kcl import ShardProcessor, run_processor
from railpulse_shared.log import configure_logging
from railpulse_shared.metrics import Metrics, sink_from_url

__all__ = ["ArchiverProcessor", "main", "make_processor"]


class ArchiverProcessor(ShardProcessor):
    """The shared adapter, except that a lost lease drops the buffer rather than flushing it."""

    handler: ArchiverHandler

    def lease_lost(self, lease_lost_input: Any) -> None:
        self.handler.discard()
        super().lease_lost(lease_lost_input)


def make_processor(settings: ArchiverSettings) -> ShardProcessor:
    stream = stream_name(settings)
    # stdout is the KCL protocol channel: "stdout" means stderr here.
    sink = sink_from_url("stderr" if settings.metrics_sink == "stdout" else settings.metrics_sink)
    metrics = Metrics(
        settings.metrics_namespace, {"service": settings.service, "stream": stream}, sink
    )
    return ArchiverProcessor(
        ArchiverHandler(settings, metrics=metrics),
        stream=stream,
        metrics=metrics,
        checkpoint_interval_s=settings.kcl_checkpoint_interval_s,
    )


def main() -> None:
    settings = load_settings(ArchiverSettings)
    configure_logging(settings.log_level, service=settings.service)
    run_processor(lambda: make_processor(settings))


if __name__ == "__main__":
    main()
