"""The detector end to end: warm-up, one event per long anomaly, attribution, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from railpulse_detector import (
    DetectorConfig,
    FleetDetector,
    Phase,
    SnapshotError,
    ThresholdConfig,
    dumps,
    loads,
)

FAST = DetectorConfig(
    channels=3,
    shingle=2,
    num_trees=20,
    sample_size=64,
    threshold=ThresholdConfig(warmup=100, stats_after=32),
)


def sensors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.stack([np.sin(t / 15), np.cos(t / 23), 0.5 * np.sin(t / 7)], axis=1)
    return 20 + 5 * base + rng.normal(0, 0.3, (n, 3))


def test_nothing_is_decided_during_warmup() -> None:
    x = sensors(150)
    x[50, 0] += 100  # a huge outlier inside the warm-up
    out = FleetDetector(FAST, [1]).process([0], x[None])
    assert np.all(out.phase[0, :100] == Phase.WARMUP)
    assert np.all(out.phase[0, 100:] != Phase.WARMUP)


def test_a_long_anomaly_is_one_event_and_names_its_channel() -> None:
    x = sensors(450)
    x[300:400, 1] += np.linspace(10, 40, 100)  # a bearing heating up over 100 frames
    out = FleetDetector(FAST, [1]).process([0], x[None])
    starts = np.flatnonzero(out.phase[0] == Phase.START)
    assert starts.size == 1 and 300 <= starts[0] < 340
    first = int(starts[0])
    assert np.argmax(out.high[0, first]) == 1
    ends = np.flatnonzero(out.phase[0] == Phase.END)
    assert ends.size <= 1 and (ends.size == 0 or ends[0] > first)
    decisions = out.decisions()
    assert decisions[first].is_anomaly and decisions[first].phase is Phase.START


def test_snapshot_restores_the_same_scores() -> None:
    x = sensors(260)
    a = FleetDetector(FAST, [4, 5])
    a.process([0, 1], np.stack([x[:180], x[:180] * 1.1]))
    b = loads(dumps(a))
    tail = np.stack([x[180:], x[180:] * 0.9])
    out_a, out_b = a.process([0, 1], tail), b.process([0, 1], tail)
    np.testing.assert_array_equal(out_a.score, out_b.score)
    np.testing.assert_array_equal(out_a.phase, out_b.phase)
    np.testing.assert_array_equal(out_a.high, out_b.high)
    assert b.config == a.config


def test_snapshot_rejects_other_bytes() -> None:
    data = dumps(FleetDetector(FAST, [1]))
    with pytest.raises(SnapshotError):
        loads(b"not a snapshot at all")
    with pytest.raises(SnapshotError):
        loads(data[:8] + b"\x09\x00" + data[10:])


def test_a_version_1_snapshot_resumes_as_its_writer_would() -> None:
    """Written by the version 1 detector, with what that detector gave next: the forest
    continues bit for bit and an open event would stay open; the likelihood's statistics
    (of the log score, new in version 3) start afresh, so the series decides again after
    ``warmup - stats_after`` frames, and the value range after ``warmup``."""
    golden = Path(__file__).parent / "golden"
    det = loads((golden / "snapshot_v1.bin").read_bytes())
    cfg = det.config.threshold
    rewarm = cfg.warmup - cfg.stats_after
    assert det.thresholder.count.tolist() == [60, 60]
    assert det.thresholder.log_n.tolist() == [0, 0] and det.thresholder.ranged.tolist() == [0, 0]
    with np.load(golden / "snapshot_v1_next.npz") as expected:
        out = det.process([0, 1], expected["tail"])
        np.testing.assert_array_equal(out.score, expected["score"])
        np.testing.assert_array_equal(out.high, expected["high"])
        np.testing.assert_array_equal(out.low, expected["low"])
        assert np.all(out.phase[:, :rewarm] == Phase.WARMUP)
        np.testing.assert_array_equal(
            out.phase[:, rewarm : cfg.warmup], expected["phase"][:, rewarm : cfg.warmup]
        )


def test_default_model_fits_in_a_megabyte() -> None:
    det = FleetDetector(DetectorConfig(), [1])
    assert det.nbytes_per_series() <= 1_000_000


def test_channel_attribution_sums_to_the_score() -> None:
    x = sensors(300)
    x[250, 2] -= 15
    out = FleetDetector(FAST, [2]).process([0], x[None])
    np.testing.assert_allclose(out.high.sum(axis=2) + out.low.sum(axis=2), out.score, rtol=1e-9)
    assert np.argmax(out.low[0, 250]) == 2


def test_extending_the_fleet_keeps_existing_models_and_matches_a_fresh_one() -> None:
    x = sensors(200)
    det = FleetDetector(FAST, [1])
    det.process([0], x[None, :120])
    new = det.extend([7, 8])
    assert new.tolist() == [1, 2]
    out = det.process([0, 2], np.stack([x[120:], x[120:]]))
    alone = FleetDetector(FAST, [8]).process([0], x[None, 120:])
    np.testing.assert_array_equal(out.score[1], alone.score[0])
    reference = FleetDetector(FAST, [1])
    reference.process([0], x[None, :120])
    np.testing.assert_array_equal(out.score[0], reference.process([0], x[None, 120:]).score[0])
