"""Hard limits and sensor faults: the acceptance cases, re-assertion, escalation, stuck, dropout."""

from __future__ import annotations

import pytest

from railpulse_detector.rules import Rules, RuleSettings
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, AnomalyKind, Quality, Reading, Severity


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
    return Rules(load_catalogue(), RuleSettings(stuck_frames=5, dropout_frames=3, reassert_ms=10_000))


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


def test_stuck_sensor_while_moving_but_not_when_parked(rules: Rules) -> None:
    moving = [rules.check(frame(i, {"bearing_temp_1": 40.0})) for i in range(7)]
    assert [a.alert_key for batch in moving for a in batch] == ["sensor_fault:bearing_temp_1"]
    parked = Rules(load_catalogue(), RuleSettings(stuck_frames=5))
    assert not any(parked.check(frame(i, {"bearing_temp_1": 40.0}, speed=0.0)) for i in range(20))
    # Channels that legitimately hold a value are never stuck.
    doors = Rules(load_catalogue(), RuleSettings(stuck_frames=5))
    assert not any(doors.check(frame(i, {"door_open_time_1": 0.0})) for i in range(20))


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
