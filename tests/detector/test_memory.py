"""What the drift and stuck-sensor checks learnt travels in the model snapshot: a worker taking
over a shard decides exactly as the one that had it would have, without relearning."""

from __future__ import annotations

import random

import msgspec
import pytest

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.memory import JudgeState
from railpulse_detector.settings import DetectorSettings
from railpulse_detector.snapshot import SnapshotError
from railpulse_detector.snapshot_writer import detached
from railpulse_shared.contracts import AcceptedFrame, Reading


def frames(seqs: range, *, leak_from: int = 10**9, stuck_from: int = 10**9) -> list[AcceptedFrame]:
    """A train at speed, braking every other minute: two brake cylinders (the first leaking from
    `leak_from`, 0.2 % of its pressure a frame) and noisy bearings (the third stuck from
    `stuck_from`)."""
    out = []
    for seq in seqs:
        rng = random.Random(seq)
        braking = (seq // 60) % 2 == 1
        cylinders = [2.0 + rng.gauss(0, 0.02), 2.0 + rng.gauss(0, 0.02)] if braking else [0.0, 0.0]
        cylinders[0] *= 1.0 - 0.002 * max(0, seq - leak_from)
        readings = {f"brake_cyl_pressure_{i + 1}": round(v, 3) for i, v in enumerate(cylinders)}
        for i in range(1, 9):
            readings[f"bearing_temp_{i}"] = round(40.0 + i + rng.gauss(0, 0.05), 3)
        if seq >= stuck_from:
            readings["bearing_temp_3"] = 43.21
        out.append(
            AcceptedFrame(
                train="train-1",
                seq=seq,
                ts_ms=1_764_000_000_000 + seq * 1000,
                readings={k: Reading(value=v) for k, v in readings.items()},
                speed_kmh=80.0,
            )
        )
    return out


def keys(handler: DetectorHandler, batch: list[AcceptedFrame]) -> list[tuple[int, str, str]]:
    return [(a.frame_seq, a.alert_key, a.message) for found in handler.decide(batch) for a in found]


def _encoded(state: JudgeState) -> bytes:
    return msgspec.msgpack.encode(state)  # NaN-safe equality


def test_a_new_owner_decides_drifts_and_stuck_sensors_as_the_old_one_would_have() -> None:
    before = DetectorHandler(DetectorSettings())
    keys(before, frames(range(1, 2400)))
    assert before.model is not None
    data = before.model.dumps()

    after = DetectorHandler(DetectorSettings())
    assert after.model is not None
    after.model.loads(data)
    assert _encoded(after.drifts.export()) == _encoded(before.drifts.export())
    assert _encoded(after.rules.export()) == _encoded(before.rules.export())
    assert _encoded(after.fleet.export()) == _encoded(before.fleet.export())
    cylinder = after.drifts.export().channels["train-1"]["brake_cyl_pressure_1"]
    assert cylinder[0] > 50  # learnt over the braking samples: judging, not learning

    later = frames(range(2400, 2700), leak_from=2400, stuck_from=2500)
    expected = keys(before, later)
    assert keys(after, later) == expected
    # One alarm per channel, carrying each judge's finding (conditions.py).
    assert any(k == "brake_cyl_pressure_1" and "drifting low" in m for _, k, m in expected)
    assert any(k == "bearing_temp_3" and "stuck at 43.21" in m for _, k, m in expected)
    # Without the snapshot a worker would have to relearn: it decides differently.
    fresh = DetectorHandler(DetectorSettings())
    assert keys(fresh, later) != expected


def test_a_detached_copy_carries_the_judges_state_as_it_was() -> None:
    handler = DetectorHandler(DetectorSettings())
    keys(handler, frames(range(1, 300)))
    assert handler.model is not None
    expected = handler.model.dumps()
    copy = detached(handler.model)
    keys(handler, frames(range(300, 400)))  # the checks learn on while the copy is written
    assert copy.dumps() == expected != handler.model.dumps()


def test_a_snapshot_with_judges_state_that_makes_no_sense_is_refused() -> None:
    handler = DetectorHandler(DetectorSettings())
    keys(handler, frames(range(1, 200)))
    assert handler.model is not None
    bank = msgspec.msgpack.decode(handler.model.dumps())
    bank["judges"]["drift"]["channels"]["train-1"]["brake_cyl_pressure_1"] = [1.0, 2.0]
    bank["judges"]["repeats"]["channels"]["train-1"]["bearing_temp_1"][0] = -5.0
    other = DetectorHandler(DetectorSettings())
    assert other.model is not None
    with pytest.raises(SnapshotError, match="7 numbers"):
        other.model.loads(msgspec.msgpack.encode(bank))
