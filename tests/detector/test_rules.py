"""Hard limits and sensor faults: the acceptance cases, re-assertion, escalation, stuck, dropout."""

from __future__ import annotations

import random

import pytest

from railpulse_detector.rules import Rules, RuleSettings
from railpulse_detector.stuck import RepeatRates
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Quality,
    Reading,
    Severity,
)


def frame(seq: int, readings: dict[str, float], *, train: str = "t1", speed: float = 80.0,
          invalid: tuple[str, ...] = ()) -> AcceptedFrame:
    return AcceptedFrame(
        train=train,
        seq=seq,
        ts_ms=1_700_000_000_000 + 1000 * seq,
        readings={
            k: Reading(value=v, quality=Quality.INVALID if k in invalid else Quality.GOOD)
            for k, v in readings.items()
        },
        speed_kmh=speed,
    )


@pytest.fixture
def rules() -> Rules:
    return Rules(load_catalogue(), RuleSettings(dropout_frames=3, reassert_ms=10_000))


@pytest.mark.parametrize(
    ("readings", "invalid", "expected"),
    [
        ({"temperature": 22, "humidity": 55}, (), []),
        ({"temperature": 75, "humidity": 40}, (), [("limit:temperature", Severity.WARNING)]),
        ({"temperature": 21, "humidity": 10}, (), [("limit:humidity", Severity.WARNING)]),
        ({"temperature": 30}, (), []),
        ({"temperature": 150, "humidity": 30}, (), [("limit:temperature", Severity.CRITICAL)]),
        ({"temperature": -10, "humidity": -5}, ("humidity",),
         [("sensor_fault:humidity", Severity.WARNING)]),
        ({"temperature": 25, "humidity": 65, "pressure": 1012}, (), []),
    ],
    ids=["case1", "case2", "case3", "case4", "case6", "case7", "case8"],
)
def test_acceptance_cases(rules: Rules, readings: dict[str, float], invalid: tuple[str, ...],
                          expected: list[tuple[str, Severity]]) -> None:
    anomalies = rules.check(frame(1, readings, speed=0.0, invalid=invalid))
    assert [(a.alert_key, a.severity) for a in anomalies] == expected


def test_critical_limit_fires_on_the_first_frame_and_names_the_channel(rules: Rules) -> None:
    (anomaly,) = rules.check(frame(1, {"bearing_temp_3": 131.0}))
    assert anomaly.category is AnomalyKind.LIMIT and anomaly.severity is Severity.CRITICAL
    assert anomaly.channels[0].channel == "bearing_temp_3"
    assert "critical limit 120" in anomaly.message


def test_persisting_condition_is_reasserted_not_repeated(rules: Rules) -> None:
    keys = [len(rules.check(frame(i, {"bearing_temp_1": 95.0 + i / 10}))) for i in range(25)]
    # Raised at 0, re-asserted every 10 s of sensor time.
    assert keys.count(1) == 3 and keys[0] == keys[10] == keys[20] == 1


def test_rising_severity_is_reported_at_once(rules: Rules) -> None:
    assert rules.check(frame(0, {"bearing_temp_1": 95.0}))[0].severity is Severity.WARNING
    assert rules.check(frame(1, {"bearing_temp_1": 125.0}))[0].severity is Severity.CRITICAL


def _noisy(rng: random.Random, base: float = 40.0) -> float:
    return round(base + rng.gauss(0.0, 0.05), 3)


def _stuck_keys(found: list[list[Anomaly]]) -> list[tuple[int, str]]:
    return [(i, a.alert_key) for i, batch in enumerate(found) for a in batch
            if a.category is AnomalyKind.SENSOR_FAULT and " stuck at " in a.message]


def test_a_noisy_channel_that_sticks_is_a_stuck_sensor_within_a_few_readings(rules: Rules) -> None:
    """A thermometer whose noise makes it repeat its last reading about once in 300 frames (and
    never twice in a row): after an hour of that, the 5th identical reading is beyond the budget."""
    rng = random.Random(1)
    healthy = [rules.check(frame(i, {"bearing_temp_1": _noisy(rng)})) for i in range(3600)]
    assert _stuck_keys(healthy) == []
    stuck = [rules.check(frame(3600 + i, {"bearing_temp_1": 40.123})) for i in range(30)]
    ((first, key), *_) = _stuck_keys(stuck)
    assert key == "sensor_fault:bearing_temp_1" and 3 <= first <= 8
    message = stuck[first][0].message
    assert message.startswith(f"bearing_temp_1 stuck at 40.123 for {first + 1} readings")
    # While it stays stuck, the alarm is re-asserted every 10 s (the notifier keeps it open).
    assert [i for i, _ in _stuck_keys(stuck)] == [first, first + 10, first + 20]
    # Once it reads again, the condition is gone.
    assert _stuck_keys([rules.check(frame(4000, {"bearing_temp_1": 41.0}))]) == []


def test_a_channel_that_holds_its_value_is_never_stuck(rules: Rules) -> None:
    """Repeats that come in runs are learnt as runs: a channel that holds from the start, and one
    whose coarse readings hold for 20-60 s at a time, raise nothing over hours."""
    assert not any(rules.check(frame(i, {"motor_temp_1": 55.0})) for i in range(5000))
    rng = random.Random(2)
    held, value, readings = 0, 50.0, []
    for _ in range(20_000):
        if held == 0:
            held, value = rng.randint(20, 60), round(value + rng.choice((-0.5, 0.5)), 1)
        held -= 1
        readings.append(value)
    found = [rules.check(frame(i, {"motor_temp_2": v}, train="t2")) for i, v in enumerate(readings)]
    assert _stuck_keys(found) == []


def test_repeats_are_learnt_per_operating_state(rules: Rules) -> None:
    """A channel that holds while the train stands (a traction current at zero) and is noisy when
    it moves is not stuck at a stop, nor when it departs; stuck while moving, it is."""
    rng = random.Random(3)
    seq = 0
    for _ in range(30):  # stops of two minutes between runs of four
        for _ in range(120):
            seq += 1
            assert not rules.check(frame(seq, {"motor_current_1": 0.0}, speed=0.0))
        for _ in range(240):
            seq += 1
            assert not rules.check(frame(seq, {"motor_current_1": _noisy(rng, 300.0)}))
    found = [rules.check(frame(seq + i, {"motor_current_1": 301.5})) for i in range(1, 20)]
    assert _stuck_keys(found)[0][1] == "sensor_fault:motor_current_1"


def test_stuck_is_not_judged_without_an_operating_state_or_on_a_channel_that_may_hold() -> None:
    rules = Rules(load_catalogue())
    rng = random.Random(4)
    readings = [_noisy(rng) for _ in range(2000)] + [40.0] * 200
    no_speed = [
        rules.check(AcceptedFrame(train="g", seq=i, ts_ms=1_700_000_000_000 + 1000 * i,
                                  readings={"bearing_temp_1": Reading(value=v)}))
        for i, v in enumerate(readings)
    ]
    assert _stuck_keys(no_speed) == []
    doors = [rules.check(frame(i, {"door_open_time_1": round(rng.random(), 3) if i < 2000 else 0.0}))
             for i in range(2200)]
    assert _stuck_keys(doors) == []


def test_repeat_rates_survive_a_dump_and_load() -> None:
    rates = RepeatRates()
    for i, v in enumerate([1.0, 2.0, 2.0, 3.0, 3.0, 3.0]):
        rates.observe(v, i % 2, 0.999)
    again = RepeatRates.load(rates.dump())
    assert again == rates and again.log_chance() == rates.log_chance()
    with pytest.raises(ValueError, match="13 numbers in range"):
        RepeatRates.load([1.0, 2.0])


def test_dropout_of_a_channel_the_train_was_sending(rules: Rules) -> None:
    rules.check(frame(0, {"bearing_temp_1": 40.0, "bearing_temp_2": 41.0}))
    found = [rules.check(frame(i, {"bearing_temp_1": 40.0 + i})) for i in range(1, 5)]
    assert [a.alert_key for batch in found for a in batch] == ["sensor_fault:bearing_temp_2"]
    assert "dropout" in found[2][0].message


def test_trains_are_independent(rules: Rules) -> None:
    assert rules.check(frame(0, {"bearing_temp_1": 125.0}, train="a"))
    assert not rules.check(frame(0, {"bearing_temp_1": 40.0}, train="b"))


def _bearings(hot: float = 0.0, present: int = 8, invalid: tuple[str, ...] = ()) -> AcceptedFrame:
    readings = {f"bearing_temp_{i}": 40.0 + 0.5 * i for i in range(1, present + 1)}
    if present >= 5:
        readings["bearing_temp_5"] += hot
    return frame(1, readings, invalid=invalid)


@pytest.mark.parametrize(
    ("hot", "expected"),
    [(4.0, None), (-12.0, (Severity.WARNING, "low")), (12.0, (Severity.WARNING, "high")),
     (25.0, (Severity.CRITICAL, "high"))],
)
def test_a_bearing_straying_from_its_peers_is_a_limit_anomaly_naming_it(
    rules: Rules, hot: float, expected: tuple[Severity, str] | None
) -> None:
    """Peer spread (catalogue: bearings ±10 warning, ±20 critical from the median of the train's
    other axle boxes at that instant), well inside the absolute limits."""
    anomalies = rules.check(_bearings(hot))
    if expected is None:
        assert anomalies == []
        return
    (anomaly,) = anomalies
    assert anomaly.alert_key == "peers:bearing_temp_5" and anomaly.category is AnomalyKind.LIMIT
    assert (anomaly.severity, anomaly.channels[0].direction) == expected
    assert anomaly.channels[0].channel == "bearing_temp_5" and "peers" in anomaly.message


def test_peers_need_three_good_readings(rules: Rules) -> None:
    assert rules.check(_bearings(hot=0.0, present=2)) == []
    # An invalid reading is no peer: with two good ones left nothing can be judged.
    odd = frame(1, {"bearing_temp_1": 40.0, "bearing_temp_2": 41.0, "bearing_temp_3": 240.0},
                invalid=("bearing_temp_3",))
    assert [a.alert_key for a in rules.check(odd)] == ["sensor_fault:bearing_temp_3"]


def test_a_channel_the_catalogue_does_not_know_is_not_judged_whatever_its_flag(
    rules: Rules,
) -> None:
    """An event from a producer that skipped ingest's checks (a name outside the catalogue marked
    good) is scored for what the rules know and raises nothing for the rest: no KeyError."""
    for seq in range(10):
        assert rules.check(frame(seq, {"a\x00b": 1.0, "bearing_temp_1": 40.0 + seq / 10})) == []


def _at(seq: int, ts_s: float, readings: dict[str, float]) -> AcceptedFrame:
    return AcceptedFrame(train="t1", seq=seq, ts_ms=1_700_000_000_000 + int(ts_s * 1000),
                         readings={k: Reading(value=v) for k, v in readings.items()}, speed_kmh=0.0)


def test_a_cold_start_does_not_alert_while_the_reservoir_charges_and_the_saloon_warms() -> None:
    rules = Rules(load_catalogue())
    # Power-up after a frosty depot night: reservoir at 1 bar, saloon at -3 degC.
    found = []
    for s in range(0, 600, 5):
        found += rules.check(_at(s + 1, s, {"main_reservoir_pressure": 1.0 + s * 0.015,
                                            "cabin_temp_1": -3.0 + s * 0.04}))
    assert found == []


def test_a_reservoir_that_never_charges_alerts_once_it_has_had_time_to() -> None:
    rules = Rules(load_catalogue())
    assert rules.check(_at(1, 0, {"main_reservoir_pressure": 2.0})) == []
    (late,) = rules.check(_at(2, 900, {"main_reservoir_pressure": 2.0}))
    assert late.alert_key == "limit:main_reservoir_pressure" and late.severity is Severity.CRITICAL
    assert late.channels[0].value == 2.0 and late.channels[0].expected == 6.0


def test_once_charged_a_low_reservoir_alerts_at_once_and_a_new_power_up_settles_again() -> None:
    rules = Rules(load_catalogue())
    assert rules.check(_at(1, 0, {"main_reservoir_pressure": 3.0})) == []
    assert rules.check(_at(2, 200, {"main_reservoir_pressure": 9.0})) == []
    (low,) = rules.check(_at(3, 201, {"main_reservoir_pressure": 7.0}))
    assert low.alert_key == "limit:main_reservoir_pressure" and low.severity is Severity.WARNING
    # Powered down for the night: the next morning's cold start settles afresh.
    assert rules.check(_at(4, 201 + 8 * 3600, {"main_reservoir_pressure": 1.0})) == []


def test_a_limit_alert_names_channel_expected_and_seen() -> None:
    (anomaly,) = Rules(load_catalogue()).check(_at(1, 0, {"bearing_temp_2": 95.0}))
    (channel,) = anomaly.channels
    assert (channel.channel, channel.value, channel.expected) == ("bearing_temp_2", 95.0, 90.0)
    assert "bearing_temp_2 95 degC above the operating limit 90" in anomaly.message


def test_a_saloon_warming_through_its_lower_limit_in_the_sensor_noise_does_not_alert() -> None:
    rules = Rules(load_catalogue())
    found = []
    for s in range(300):  # 15.9, 16.05, 15.95, ... then on up: noise around the limit
        value = 16.0 + (0.05 if s % 2 else -0.05) + max(0, s - 200) * 0.02
        found += rules.check(_at(s + 1, s, {"cabin_temp_1": value}))
    assert found == []
