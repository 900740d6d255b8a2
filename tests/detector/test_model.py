"""The forests behind the detector: a hot bearing is one event naming its channel; snapshots resume."""

from __future__ import annotations

import numpy as np

from railpulse_detector.model import ModelBank, ModelSettings
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, Reading

SETTINGS = ModelSettings(num_trees=20, warmup=200, refractory=200, settle_s=0.0)


def frames(train: str, start: int, count: int, hot: float = 0.0, seed: int = 0) -> list[AcceptedFrame]:
    rng = np.random.default_rng(seed + start)
    out = []
    for seq in range(start, start + count):
        base = 40 + 2 * np.sin(seq / 30)
        readings = {f"bearing_temp_{i}": base + rng.normal(0, 0.3) for i in range(1, 9)}
        readings["bearing_temp_5"] += hot * max(0, seq - start)
        readings |= {"speed": 80 + rng.normal(0, 1), "main_reservoir_pressure": 9 + rng.normal(0, 0.05)}
        out.append(
            AcceptedFrame(
                train=train,
                seq=seq,
                ts_ms=1_700_000_000_000 + seq * 1000,
                readings={k: Reading(value=float(v)) for k, v in readings.items()},
            )
        )
    return out


def run(bank: ModelBank, batch: list[AcceptedFrame]) -> list[tuple[int, str, str]]:
    found = []
    for i in range(0, len(batch), 25):  # KCL-sized batches
        for (_, seq), anomalies in bank.score(batch[i : i + 25]).items():
            found += [(seq, a.alert_key, a.channels[0].channel) for a in anomalies]
    return sorted(found)


def test_a_degrading_bearing_is_one_model_event_that_names_it() -> None:
    bank = ModelBank(load_catalogue(), SETTINGS)
    assert run(bank, frames("t1", 0, 400)) == []  # warm-up and normal running: silent
    events = run(bank, frames("t1", 400, 120, hot=0.25))
    assert events, "the drifting bearing was not noticed"
    first_seq, key, top = events[0]
    assert key == "model:bearing_temp_5" and top == "bearing_temp_5"
    assert first_seq < 460  # within a minute of the drift starting (1 Hz)
    # One alarm key for the whole episode; re-assertions only every 10 s of sensor time.
    assert {k for _, k, _ in events} == {key}
    assert len(events) <= 1 + (events[-1][0] - first_seq) // 10 + 1


def test_replays_and_backfill_do_not_advance_the_forest() -> None:
    bank = ModelBank(load_catalogue(), SETTINGS)
    batch = frames("t1", 0, 50)
    bank.score(batch)
    assert bank.last_seq["t1"] == 49
    assert bank.score(batch) == {}  # a replay after failover changes nothing
    assert bank.last_seq["t1"] == 49


def test_snapshot_restores_the_same_future() -> None:
    catalogue = load_catalogue()
    original = ModelBank(catalogue, SETTINGS)
    run(original, frames("t1", 0, 300) + frames("t2", 0, 300, seed=9))
    restored = ModelBank(catalogue, SETTINGS)
    restored.loads(original.dumps())
    future = frames("t1", 300, 150, hot=0.3)
    assert run(restored, future) == run(original, future)
    assert 0 < original.bytes_per_model() <= 1_100_000


def test_a_train_whose_state_cannot_be_serialised_is_dropped_not_the_snapshot() -> None:
    """A value msgpack refuses in one train's state (here a sequence number beyond 2**64 that
    got past the handler) costs that train its small state, never the shard's snapshot."""
    bank = ModelBank(load_catalogue(), SETTINGS)
    run(bank, frames("train-1", 1, 30) + frames("train-2", 1, 30))
    bank.last_seq["train-2"] = 2**70

    restored = ModelBank(load_catalogue(), SETTINGS)
    restored.loads(bank.dumps())

    assert bank.take_dropped() == ["train-2"] and bank.take_dropped() == []
    assert restored.last_seq == {"train-1": 30}
    # train-2 starts its sequence afresh: its next frames reach the forest again.
    assert run(restored, frames("train-2", 31, 5)) == []
    assert restored.last_seq["train-2"] == 35


def _morning(settle_s: float) -> list[tuple[int, str, str]]:
    bank = ModelBank(load_catalogue(), ModelSettings(num_trees=20, warmup=200, refractory=200,
                                                     settle_s=settle_s))
    rng = np.random.default_rng(5)
    standing = [  # powered up in the depot: cold bearings, standing
        AcceptedFrame(train="t1", seq=s, ts_ms=1_700_000_000_000 + s * 1000,
                      readings={**{f"bearing_temp_{i}": Reading(value=2.0 + rng.normal(0, 0.3))
                                   for i in range(1, 9)}, "speed": Reading(value=0.0)})
        for s in range(300)
    ]
    found = run(bank, standing)
    found += run(bank, frames("t1", 300, 1900))  # into service: all new to the forest
    found += run(bank, frames("t1", 2200, 120, hot=0.25))
    return found


def test_a_morning_start_is_learnt_not_alerted_and_the_forest_judges_once_settled() -> None:
    """A forest that wakes with the train has seen neither the cold start nor the first half
    hour of service: what it makes of them is learnt, not alerted; after that it judges."""
    found = _morning(settle_s=1800.0)
    assert found and {key for _, key, _ in found} == {"model:bearing_temp_5"}
    assert min(seq for seq, _, _ in found) >= 2200
    unsettled = _morning(settle_s=0.0)
    assert min(seq for seq, _, _ in unsettled) < 2200  # without it, the morning itself alerts


def test_a_train_that_reports_no_speed_is_judged_as_in_service() -> None:
    """The morning gate waits for a train's first half hour of service, which only its speed can
    show. A train that reports no speed shows no morning start: its forest judges after the
    warm-up, as for a train met in service, instead of never."""

    def bank() -> ModelBank:
        return ModelBank(load_catalogue(), ModelSettings(num_trees=20, warmup=200, refractory=200,
                                                         settle_s=1800.0))

    def bearings(batch: list[AcceptedFrame], *, speed: float | None) -> list[AcceptedFrame]:
        return [AcceptedFrame(train=f.train, seq=f.seq, ts_ms=f.ts_ms, speed_kmh=speed,
                              readings={k: r for k, r in f.readings.items()
                                        if k.startswith("bearing_temp_")})
                for f in batch]

    day = frames("t1", 0, 400) + frames("t1", 400, 120, hot=0.25)
    found = run(bank(), bearings(day, speed=None))
    assert found and {key for _, key, _ in found} == {"model:bearing_temp_5"}
    assert 400 <= min(seq for seq, _, _ in found) < 460
    # The same frames from a train that says it stands (powered up, being prepared): the forest
    # learns and says nothing until half an hour after it first moves.
    assert run(bank(), bearings(day, speed=0.0)) == []


def test_an_unusual_outside_temperature_is_learnt_not_alerted() -> None:
    """The outside air is the train's surroundings (`context` in the catalogue): the warmest
    afternoon a forest has seen is new to it, but no fault of the train. A bearing is."""

    def day(start: int, count: int, *, warm: float = 0.0, hot: float = 0.0) -> list[AcceptedFrame]:
        out = []
        for f in frames("t1", start, count, hot=hot):
            rise = warm * max(0, f.seq - start)
            out.append(AcceptedFrame(train=f.train, seq=f.seq, ts_ms=f.ts_ms, readings={
                **f.readings, "outside_temp": Reading(value=12.0 + rise + 0.01 * (f.seq % 7))}))
        return out

    bank = ModelBank(load_catalogue(), SETTINGS)
    assert run(bank, day(0, 400)) == []
    assert run(bank, day(400, 200, warm=0.1)) == []  # +20 degC outside: nothing to report
    control = ModelBank(load_catalogue(), SETTINGS)
    run(control, day(0, 400))
    found = run(control, day(400, 120, hot=0.25))
    assert found and found[0][1] == "model:bearing_temp_5"
