"""The detector's configuration, from the environment (`RAILPULSE_*`, `AWS_*`)."""

from __future__ import annotations

from railpulse_shared.multilang import KclSettings

__all__ = ["APPLICATION_NAME", "DetectorSettings"]

APPLICATION_NAME = "railpulse-detector"
"""The KCL application, and so the name of its DynamoDB lease table."""


class DetectorSettings(KclSettings, frozen=True, kw_only=True):
    service: str = "detector"
    stuck_frames: int = 120
    dropout_frames: int = 5
    reassert_ms: int = 10_000
    snapshot_interval_s: float = 300.0
    """How often each shard's model state is written to S3 (and at a clean hand-over). The
    checkpoint follows the snapshots, so this also bounds what a new owner replays after a crash."""
    snapshot_prefix: str = "detector/snapshots"
    model_enabled: bool = True
    model_trees: int = 25
    model_warmup: int = 400
    """Frames a train's forest sees before its scores are trusted (and the refractory time
    after an event). Below ~400 the score statistics are immature and healthy simulated trains
    raised false alerts right after warm-up."""
    model_z_enter: float = 8.0
    """Standard deviations above the mean score that start an event. NAB's default (6) costs
    little there; a fleet at 1 Hz would see ~1 false alert per train-hour on the simulator."""
