"""The one-reading spike judge (`spike`), alone and inside the rules."""

from __future__ import annotations

import numpy as np
import pytest

from railpulse_detector.memory import JudgeState
from railpulse_detector.rules import Rules
from railpulse_detector.spike import Spike, Spikes
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, Reading

SPAN = 11.5  # the line voltage's operating span, kV


def line(n: int, seed: int = 1) -> list[float]:
    """A healthy 25 kV line: a slow swing and 0.05 kV of noise, to the volt."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.round(25 + 0.6 * np.sin(t / 300) + rng.normal(0, 0.05, n), 3).tolist()


def feed(spikes: Spikes, values: list[float], start: int = 1) -> list[Spike]:
    found = []
    for seq, v in enumerate(values, start):
        if (spike := spikes.observe("t1", "line_voltage", seq, v, SPAN)) is not None:
            found.append(spike)
    return found


def test_a_healthy_channel_raises_nothing_and_an_arc_inside_the_range_is_found_a_reading_late() -> (
    None
):
    spikes = Spikes()
    values = line(20_000)
    assert feed(spikes, values) == []
    arc = values[-1] + 3.2  # half a worn pantograph's arc: 28.x kV, inside the 29 kV limit
    assert spikes.observe("t1", "line_voltage", 20_001, arc, SPAN) is None  # not known yet
    spike = spikes.observe("t1", "line_voltage", 20_002, values[-1], SPAN)
    assert spike is not None and (spike.seq, spike.value) == (20_001, arc)
    assert 0.03 < spike.wobble < 0.08  # what the channel taught it: its noise


def test_a_step_to_a_new_level_and_a_leap_on_a_quiet_channel_are_no_spikes() -> None:
    spikes = Spikes()
    values = line(2_000)
    stepped = values + [v + 3.2 for v in line(200, seed=2)]  # a new level that stays
    assert feed(spikes, stepped) == []
    quiet = Spikes()  # a wobble of 0: only a fifth of the span counts
    flat = [0.0] * 500 + [1.5] + [0.0] * 10 + [2.5] + [0.0] * 10
    found = [s for seq, v in enumerate(flat) if (s := quiet.observe("t", "c", seq, v, 10.0))]
    assert [(s.seq, s.value) for s in found] == [(511, 2.5)]


def test_backfilled_frames_fall_into_place_a_replay_is_not_judged_twice_and_a_restart_begins_anew() -> None:
    spikes = Spikes()
    values = line(1_000)
    assert feed(spikes, values[:900]) == []
    # A tunnel: 901-904 spooled, 905 sent live first, then the spool; 902 arced.
    late = {seq: values[seq - 1] for seq in range(901, 906)}
    late[902] += 4.0
    order = [905, 901, 902, 903, 904]
    found = [spikes.observe("t1", "line_voltage", s, late[s], SPAN) for s in order]
    assert [f.seq if f else None for f in found] == [None, None, None, 902, None]
    assert spikes.observe("t1", "line_voltage", 903, late[903], SPAN) is None  # replayed
    # The train's counter starts again: its new frames are judged from their own first three.
    restarted = values[:50]
    restarted[20] += 4.0
    assert [s.seq for s in feed(spikes, restarted)] == [21]


def test_nothing_is_judged_before_the_wobble_is_learnt_and_what_it_learnt_survives_a_restore() -> (
    None
):
    spikes = Spikes()
    early = [25.0, 25.0, 29.0, 25.0]  # a leap in its first readings: nothing learnt to judge by
    assert feed(spikes, early) == []
    values = line(3_000)
    feed(spikes, values, start=10)
    saved = spikes.export()
    again = Spikes()
    again.restore(JudgeState(channels=saved.channels))
    assert again.export() == saved
    seq = 10 + len(values)
    assert again.observe("t1", "line_voltage", seq, values[-1], SPAN) is None
    assert again.observe("t1", "line_voltage", seq + 1, values[-1] - 4.0, SPAN) is None
    assert again.observe("t1", "line_voltage", seq + 2, values[-1], SPAN) is not None
    with pytest.raises(ValueError, match="two numbers"):
        again.restore(JudgeState(channels={"t1": {"line_voltage": [float("nan"), 1.0]}}))


def test_the_rules_report_a_spike_as_one_finding_on_its_channel_with_what_was_expected() -> None:
    rules = Rules(load_catalogue())
    values = line(400)
    values[300] = values[299] + 3.5  # inside the operating range
    keys = {}
    for seq, v in enumerate(values, 1):
        frame = AcceptedFrame(
            train="t1",
            seq=seq,
            ts_ms=1_700_000_000_000 + seq * 1000,
            speed_kmh=80.0,
            readings={"line_voltage": Reading(value=v)},
        )
        for anomaly in rules.check(frame):
            keys[seq] = anomaly
    assert list(keys) == [302]  # the reading after the leap
    (attribution,) = keys[302].channels
    assert keys[302].alert_key == "spike:line_voltage"
    assert attribution.value == values[300] and attribution.direction == "high"
    assert attribution.expected == pytest.approx((values[299] + values[301]) / 2)
    assert "leapt to" in keys[302].message
