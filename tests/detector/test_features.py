"""The forest's view of a frame: peer deviations that name their channel, carried forward."""

from __future__ import annotations

import numpy as np

from railpulse_detector.features import feature_sets
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, DeviceKind, Quality, Reading

SETS = feature_sets(load_catalogue())


def frame(readings: dict[str, float], invalid: tuple[str, ...] = ()) -> AcceptedFrame:
    return AcceptedFrame(
        train="t",
        seq=1,
        ts_ms=1,
        readings={
            k: Reading(value=v, quality=Quality.INVALID if k in invalid else Quality.GOOD)
            for k, v in readings.items()
        },
    )


def test_train_features_are_compact_and_cover_the_groups() -> None:
    train = SETS[DeviceKind.TRAIN]
    assert train.size <= 12
    assert {"bearing_temp_dev", "motor_temp_dev", "main_reservoir_pressure"} <= set(train.names)
    assert not any(name.startswith("door") for name in train.names)
    assert SETS[DeviceKind.SENSOR].names[:3] == ("temperature", "humidity", "pressure")


def test_a_hot_bearing_is_a_deviation_named_after_its_channel() -> None:
    train = SETS[DeviceKind.TRAIN]
    state = train.new_state()
    bearings = {f"bearing_temp_{i}": 40.0 + i * 0.1 for i in range(1, 9)}
    bearings["bearing_temp_6"] = 58.0
    values, sources = train.extract(frame(bearings), state)
    index = train.names.index("bearing_temp_dev")
    assert sources[index] == "bearing_temp_6"
    assert values[index] == 58.0 - float(np.median(list(bearings.values())))


def test_missing_and_invalid_readings_carry_the_last_good_value_forward() -> None:
    sensor = SETS[DeviceKind.SENSOR]
    state = sensor.new_state()
    first, _ = sensor.extract(frame({"temperature": 21.0, "humidity": 50.0}), state)
    second, _ = sensor.extract(frame({"temperature": 22.0, "humidity": -5.0}, ("humidity",)), state)
    third, _ = sensor.extract(frame({}), state)
    assert (first[:2].tolist(), second[:2].tolist(), third[:2].tolist()) == (
        [21.0, 50.0],
        [22.0, 50.0],
        [22.0, 50.0],
    )
