"""The KCL child process for one shard of `telemetry` (`python -m railpulse_detector.processor`).

The MultiLangDaemon starts it per leased shard; stdout is the KCL protocol, so logs go to stderr
and metrics to the sink in RAILPULSE_METRICS_SINK (the CloudWatch agent in AWS).
"""

from __future__ import annotations

from typing import Any

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_shared.config import load_settings
from railpulse_shared.kcl import ShardProcessor, run_processor
from railpulse_shared.log import configure_logging
from railpulse_shared.metrics import Metrics, sink_from_url


class DetectorProcessor(ShardProcessor):
    """The shared adapter, except that a lost lease writes no snapshot (the new owner's now)."""

    handler: DetectorHandler

    def lease_lost(self, lease_lost_input: Any) -> None:
        self.handler.lose()
        super().lease_lost(lease_lost_input)


def make_processor() -> ShardProcessor:
    settings = load_settings(DetectorSettings)
    configure_logging(settings.log_level, service=settings.service)
    metrics = Metrics(
        settings.metrics_namespace,
        {"service": settings.service, "stream": settings.stream_telemetry},
        sink_from_url("stderr" if settings.metrics_sink == "stdout" else settings.metrics_sink),
    )
    return DetectorProcessor(
        DetectorHandler(settings, metrics),
        stream=settings.stream_telemetry,
        metrics=metrics,
        checkpoint_interval_s=settings.kcl_checkpoint_interval_s,
    )


if __name__ == "__main__":
    run_processor(make_processor)
