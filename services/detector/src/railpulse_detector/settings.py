"""The detector's configuration, from the environment (`RAILPULSE_*`, `AWS_*`)."""

from __future__ import annotations

from railpulse_detector.model import ModelSettings
from railpulse_shared.multilang import KclSettings

__all__ = ["APPLICATION_NAME", "DetectorSettings"]

_MODEL = ModelSettings()

APPLICATION_NAME = "railpulse-detector"
"""The KCL application, and so the name of its DynamoDB lease table."""


class DetectorSettings(KclSettings, frozen=True, kw_only=True):
    service: str = "detector"
    stuck_alarms_per_day: float = 0.01
    """False stuck-sensor alarms a healthy train may raise a day (see `stuck`)."""
    dropout_frames: int = 5
    reassert_ms: int = 10_000
    snapshot_interval_s: float = 300.0
    """How often each shard's model state is written to S3 (and at a clean hand-over). The
    checkpoint follows the snapshots, so this also bounds what a new owner replays after a crash."""
    snapshot_first_s: float = 60.0
    """When the first snapshot is taken after the shard is leased (if the models moved; at most
    `snapshot_interval_s`), plus up to as much again: each shard waits its own share, so that
    shards leased together do not snapshot at the same moment ever after. Soon, so that a new
    owner's checkpoint starts moving, a broken snapshot path (bucket, permissions) shows in
    `SnapshotsFailed` a minute or two after a deploy, and the snapshot's reusable copy of the
    models is in place early: from then on the detector's memory is what its fleet needs, and
    grows only with the fleet."""
    snapshot_prefix: str = "detector/snapshots"
    model_enabled: bool = True
    model_trees: int = _MODEL.num_trees
    model_warmup: int = _MODEL.warmup
    """Frames a device's forest sees before its scores are trusted (and the refractory time
    after an event)."""
    model_p_enter: float = _MODEL.p_enter
    """Tail probability of the averaged forest score that starts an event (the anomaly
    likelihood's 1 - 0.99999); smaller alerts less."""
