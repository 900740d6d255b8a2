"""railpulse_detector: a streaming Random Cut Forest for a fleet of trains (numpy only)."""

from railpulse_detector.detector import Decision, DecisionBatch, DetectorConfig, FleetDetector
from railpulse_detector.forest import ForestConfig, ForestOutput, RandomCutForest
from railpulse_detector.snapshot import FORMAT_VERSION, SnapshotError, dumps, loads
from railpulse_detector.threshold import Phase, ThresholdConfig, Thresholder

__all__ = [
    "FORMAT_VERSION",
    "Decision",
    "DecisionBatch",
    "DetectorConfig",
    "FleetDetector",
    "ForestConfig",
    "ForestOutput",
    "Phase",
    "RandomCutForest",
    "SnapshotError",
    "ThresholdConfig",
    "Thresholder",
    "dumps",
    "loads",
]
