"""`python -m railpulse_ingest.processor`: the KCL child process for one shard of `telemetry-raw`.

stdout is the MultiLangDaemon's protocol channel: logs go to stderr, metrics to the configured
sink (never stdout here).
"""

from __future__ import annotations

import gc
from typing import Any

from railpulse_ingest.handler import IngestHandler
from railpulse_ingest.settings import IngestSettings
from railpulse_shared.aws import AwsClients
from railpulse_shared.config import load_settings
from railpulse_shared.kcl import ShardProcessor, run_processor
from railpulse_shared.log import configure_logging
from railpulse_shared.metrics import Metrics, sink_from_url

__all__ = ["IngestProcessor", "main", "make_processor"]


class IngestProcessor(ShardProcessor):
    """Hands the shard's checkpoint to the handler, which reads `telemetry` back from there."""

    handler: IngestHandler

    def initialize(self, initialize_input: Any) -> None:
        self.handler.checkpoint_sequence = initialize_input.sequence_number
        super().initialize(initialize_input)


def make_processor(settings: IngestSettings, clients: AwsClients | None = None) -> IngestProcessor:
    sink = "stderr" if settings.metrics_sink == "stdout" else settings.metrics_sink
    metrics = Metrics(
        settings.metrics_namespace,
        {"service": settings.service, "stream": settings.stream_raw},
        sink_from_url(sink),
    )
    return IngestProcessor(
        IngestHandler(settings, metrics=metrics, clients=clients),
        stream=settings.stream_raw,
        metrics=metrics,
        checkpoint_interval_s=settings.kcl_checkpoint_interval_s,
    )


def main() -> None:
    settings = load_settings(IngestSettings)
    configure_logging(settings.log_level, service=settings.service)
    # Modules, catalogue and clients live as long as the process: keep them out of every GC
    # pass, so a collection only scans the batch being processed (~10% of the hot path).
    gc.freeze()
    run_processor(lambda: make_processor(settings))


if __name__ == "__main__":
    main()
