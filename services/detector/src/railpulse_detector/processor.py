"""The KCL child process for one shard of `telemetry` (`python -m railpulse_detector.processor`).

The MultiLangDaemon starts it per leased shard; stdout is the KCL protocol, so logs go to stderr
and metrics to the sink in RAILPULSE_METRICS_SINK (the CloudWatch agent in AWS).
"""

from __future__ import annotations

import ctypes
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


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_allocations(threshold: int = 4 << 20) -> bool:
    """Give every allocation of `threshold` bytes or more a mapping of its own, returned to the
    system when freed. glibc by default raises this threshold to the largest block freed so
    far (up to 32 MiB), so the snapshot writer's transient buffers (the encoded snapshot, the
    upload's) settled in its thread's arena, and the process kept their high-water mark: about
    the models' size again, reached over the first snapshots. The scoring loop's arrays, smaller,
    come from the arenas as before. False where the C library is not glibc."""
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def make_processor() -> ShardProcessor:
    map_large_allocations()
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
