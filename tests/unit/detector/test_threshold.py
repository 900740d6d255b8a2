"""The decision rule: anomaly likelihood on the forest's score, range novelty, one event per episode."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from railpulse_detector import (
    DetectorConfig,
    FleetDetector,
    Phase,
    ThresholdConfig,
    Thresholder,
    dumps,
    loads,
)

LIKELIHOOD_ONLY = ThresholdConfig(novelty=None)


def healthy_scores(n: int, seed: int = 0, centre: float = 0.6) -> npt.NDArray[np.float64]:
    """Forest-like scores: positive, right-skewed (a normal point scores about 0.6)."""
    return np.random.default_rng(seed).lognormal(np.log(centre), 0.3, n)


def decide(
    cfg: ThresholdConfig,
    scores: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64] | None = None,
    block: int = 256,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
    """One series through a fresh thresholder, ``block`` points per call."""
    th = Thresholder(1, cfg)
    levels, phases = [], []
    for a in range(0, scores.size, block):
        chunk = scores[None, a : a + block]
        vals = None if values is None else values[None, a : a + block, None]
        lv, ph = th.step(np.array([0]), chunk, np.array([chunk.shape[1]]), vals)
        levels.append(lv[0])
        phases.append(ph[0])
    return np.concatenate(levels), np.concatenate(phases)


@pytest.mark.parametrize("centre", [0.6, 3.0])  # below the floor, and well above it
def test_a_stationary_score_raises_no_alert(centre: float) -> None:
    _, phase = decide(LIKELIHOOD_ONLY, healthy_scores(20_000, centre=centre))
    assert np.all(phase[: LIKELIHOOD_ONLY.warmup] == Phase.WARMUP)
    assert not np.any(phase == Phase.START)


def test_a_noisy_score_is_averaged_away_and_a_wild_one_is_not() -> None:
    """A score 2x the usual (2.3 of its own sigmas) alone is noise; 8x (7 sigmas) alone is an
    event: one frame the forest finds that far out is not averaged away."""
    scores = healthy_scores(3000)
    scores[2000] = 1.2
    _, phase = decide(LIKELIHOOD_ONLY, scores)
    assert not np.any(phase == Phase.START)
    scores[2000] = 4.8
    _, phase = decide(LIKELIHOOD_ONLY, scores)
    assert np.flatnonzero(phase == Phase.START).tolist() == [2000]


def test_a_sustained_jump_is_one_event_that_starts_within_the_average_and_ends() -> None:
    scores = healthy_scores(4000, centre=3.0)  # the likelihood's bar, not the floor, decides
    scores[2000:2300] *= 3.0
    levels, phase = decide(LIKELIHOOD_ONLY, scores)
    starts = np.flatnonzero(phase == Phase.START)
    assert starts.size == 1 and 2000 <= starts[0] < 2000 + LIKELIHOOD_ONLY.average
    assert scores[starts[0]] > levels[starts[0]] > 3.0
    ends = np.flatnonzero(phase == Phase.END)
    assert ends.size == 1 and starts[0] < ends[0] < 2400
    assert np.all(phase[starts[0] + 1 : ends[0]] == Phase.ONGOING)


def test_the_bar_is_a_probability_not_a_scale() -> None:
    """The same shape of scores at ten times the scale gives the same decisions."""
    scores = healthy_scores(4000)
    scores[2000:2100] *= 2.5
    _, small = decide(LIKELIHOOD_ONLY, scores)
    _, large = decide(replace(LIKELIHOOD_ONLY, floor=10.0), scores * 10)
    np.testing.assert_array_equal(small, large)


def test_a_value_beyond_the_range_seen_starts_an_event_even_in_the_refractory_time() -> None:
    cfg = ThresholdConfig()
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 1.0, 3000)
    scores = healthy_scores(3000)
    scores[1000:1100] *= 3.0  # a likelihood event, ending near 1100 ...
    values[1150] = 1.04  # ... inside the 5 % tolerance: nothing
    values[1200] = 1.2  # ... beyond it, within the refractory time: an event
    _, phase = decide(cfg, scores, values)
    starts = np.flatnonzero(phase == Phase.START)
    assert starts.size == 2 and 1000 <= starts[0] < 1016 and starts[1] == 1200
    _, without = decide(replace(cfg, novelty=None), scores, values)
    assert np.flatnonzero(without == Phase.START).tolist() == starts[:1].tolist()


def test_the_range_check_waits_for_the_warmup_and_a_span() -> None:
    cfg = ThresholdConfig()
    values = np.zeros(1000)
    values[100] = 50.0  # during the warm-up: learnt, not flagged
    values[600] = 51.0  # within 5 % of the span seen: nothing
    _, phase = decide(cfg, healthy_scores(1000), values)
    assert not np.any(phase == Phase.START)
    flat = np.full(1000, 3.0)
    flat[700] = 4.0  # a constant channel has no span: the forest's score judges it
    _, phase = decide(cfg, healthy_scores(1000), flat)
    assert not np.any(phase == Phase.START)


def test_decisions_do_not_depend_on_how_frames_are_grouped() -> None:
    cfg = ThresholdConfig()
    rng = np.random.default_rng(2)
    scores = healthy_scores(3000)
    scores[1500:1600] *= 3.0
    values = rng.normal(0, 1, 3000)
    values[2500] = 9.0
    one = decide(cfg, scores, values, block=3000)
    for block in (1, 7, 64, 1000):
        got = decide(cfg, scores, values, block=block)
        np.testing.assert_allclose(got[0], one[0], rtol=1e-12)
        np.testing.assert_array_equal(got[1], one[1])


def test_the_likelihood_state_round_trips_through_the_snapshot() -> None:
    cfg = DetectorConfig(channels=2, shingle=2, num_trees=10, sample_size=32)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 700, 2))
    x[1, 650:, 0] += 6.0
    a = FleetDetector(cfg, [1, 2])
    a.process([0, 1], x[:, :600])
    b = loads(dumps(a))
    assert b.config == a.config
    for name in Thresholder.STATE_FIELDS:
        np.testing.assert_array_equal(getattr(b.thresholder, name), getattr(a.thresholder, name))
    out_a, out_b = a.process([0, 1], x[:, 600:]), b.process([0, 1], x[:, 600:])
    np.testing.assert_array_equal(out_a.threshold, out_b.threshold)
    np.testing.assert_array_equal(out_a.phase, out_b.phase)
    assert np.any(out_b.phase[1] == Phase.START)


def test_a_config_saved_with_the_fixed_z_rule_still_loads() -> None:
    saved = {"warmup": 20, "stats_after": 8, "window": 5000.0, "z_enter": 6.0, "z_exit": 3.0}
    cfg = ThresholdConfig.from_saved(saved)
    assert cfg.warmup == 20 and cfg.p_enter == ThresholdConfig().p_enter
    assert cfg.z_enter == pytest.approx(4.265, abs=1e-3)  # Numenta's 0.99999
    with pytest.raises(ValueError, match="bogus"):
        ThresholdConfig.from_saved({**saved, "bogus": 1})
