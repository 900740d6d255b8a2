"""The signal model and the scenario runner: plausible, correlated, vectorised, faults with truth."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from railpulse_edge.errors import ScenarioError
from railpulse_edge.sim.model import CHANNELS, INDEX, FleetModel
from railpulse_edge.sim.scenario import Fault, Scenario, ScenarioRunner, load_scenario
from railpulse_shared.catalogue import load_catalogue


def _run(model: FleetModel, steps: int, runner: ScenarioRunner | None = None) -> np.ndarray:
    out = []
    for _ in range(steps):
        if runner is not None:
            runner.before_step(model, model.t + 1.0, int((model.t + 1.0) * 1000))
        snap = model.step(1.0)
        if runner is not None:
            runner.after_step(snap.values)
        out.append(snap.values.copy())
    return np.stack(out)  # (time, train, channel)


def test_channels_are_catalogued_and_normal_operation_stays_in_operating_ranges() -> None:
    catalogue = load_catalogue()
    values = _run(FleetModel(40, seed=1), 1800)
    for name in CHANNELS:
        channel = catalogue.channels[name]
        low, high = channel.operating
        v = values[:, :, INDEX[name]]
        assert np.isfinite(v).all(), name
        assert low <= v.min() and v.max() <= high, (name, v.min(), v.max())


def test_signals_are_correlated_like_a_train() -> None:
    model = FleetModel(30, seed=2)
    values = _run(model, 1200)
    speed = values[:, :, INDEX["speed"]]
    current = values[:, :, INDEX["motor_current_1"]]
    brake = values[:, :, INDEX["brake_cyl_pressure_1"]]
    doors = values[:, :, INDEX["door_open_time_1"]]
    accel = np.diff(speed, axis=0)
    # Accelerating draws traction current; braking regenerates (negative) and applies brakes.
    assert current[1:][accel > 1.0].mean() > 150
    assert current[1:][accel < -1.0].mean() < 0
    assert brake[1:][accel < -1.5].mean() > brake[1:][np.abs(accel) < 0.01].mean() - 1.0
    # Doors open only at a standstill, and every train stops at stations.
    assert (speed[doors > 0] == 0).all()
    assert ((speed == 0).any(axis=0)).all()
    # Bearings follow load with thermal lag: they track the speed smoothed over ~15 minutes,
    # not the instantaneous speed.
    long = _run(FleetModel(20, seed=4), 3000)
    speed, bearing = long[:, :, INDEX["speed"]], long[:, :, INDEX["bearing_temp_1"]]
    smoothed = np.zeros_like(speed)
    level, k = speed[0].copy(), 1 - np.exp(-1 / 900)
    for t in range(len(speed)):
        level += (speed[t] - level) * k
        smoothed[t] = level
    late = slice(1000, None)
    lagged = np.mean([np.corrcoef(smoothed[late, i], bearing[late, i])[0, 1] for i in range(20)])
    instant = np.mean([np.corrcoef(speed[late, i], bearing[late, i])[0, 1] for i in range(20)])
    assert lagged > 0.6 and lagged > instant + 0.3


def test_two_hundred_trains_step_cheaply() -> None:
    model = FleetModel(300, seed=3)
    t0 = time.perf_counter()
    for _ in range(100):
        model.step(1.0)
    assert (time.perf_counter() - t0) / 100 < 0.02  # < 20 ms per step for 300 trains


def test_faults_show_as_the_failure_would_and_write_ground_truth() -> None:
    names = [f"train-{i:03d}" for i in range(1, 7)]
    scenario = load_scenario_text("""
        seed = 5
        [[fault]]
        train = "train-001"
        kind = "bearing_degradation"
        channel = "bearing_temp_3"
        at_s = 100
        rate = 120
        [[fault]]
        train = "train-002"
        kind = "stuck_sensor"
        channel = "motor_temp_2"
        at_s = 50
        [[fault]]
        train = "train-003"
        kind = "sensor_dropout"
        channel = "vibration_1"
        at_s = 50
        duration_s = 20
        [[fault]]
        train = 3
        kind = "hvac_failure"
        at_s = 10
        [[fault]]
        train = "train-005"
        kind = "brake_leak"
        channel = "brake_cyl_pressure_2"
        at_s = 10
        rate = 5
        [[fault]]
        train = "train-006"
        kind = "spike"
        channel = "line_voltage"
        at_s = 30
        magnitude = 20
        [[fault]]
        train = "train-006"
        kind = "link_outage"
        at_s = 40
        duration_s = 60
    """)
    truth = io.StringIO()
    model = FleetModel(6, seed=scenario.seed)
    runner = ScenarioRunner(scenario, names, truth)
    values = _run(model, 1500, runner)
    b3, b4 = INDEX["bearing_temp_3"], INDEX["bearing_temp_4"]
    assert values[-1, 0, b3] - values[-1, 0, b4] > 15  # the degrading bearing runs hot
    assert values[-1, 0, INDEX["vibration_2"]] > values[-1, 0, INDEX["vibration_1"]]  # its bogie shakes
    assert np.ptp(values[60:, 1, INDEX["motor_temp_2"]]) == 0  # stuck
    assert np.isnan(values[55, 2, INDEX["vibration_1"]]) and np.isfinite(values[80, 2, INDEX["vibration_1"]])
    assert values[-1, 3, INDEX["cabin_temp_1"]] - 21.5 > 2 or values[-1, 3, INDEX["cabin_humidity_1"]] > 60
    braking = values[:, 4, INDEX["brake_cyl_pressure_1"]] > 1.0
    assert (values[braking, 4, INDEX["brake_cyl_pressure_2"]] < values[braking, 4, INDEX["brake_cyl_pressure_1"]] * 0.5)[-200:].all()
    spikes = values[:, 5, INDEX["line_voltage"]]
    assert (spikes > 40).sum() == 1  # one sample
    records = [json.loads(line) for line in truth.getvalue().splitlines()]
    starts = {(r["train"], r["fault"]): r for r in records if "start_ms" in r}
    assert set(starts) == {("train-001", "bearing_degradation"), ("train-002", "stuck_sensor"),
                           ("train-003", "sensor_dropout"), ("train-004", "hvac_failure"),
                           ("train-005", "brake_leak"), ("train-006", "spike"),
                           ("train-006", "link_outage")}
    assert starts[("train-001", "bearing_degradation")]["channel"] == "bearing_temp_3"
    assert starts[("train-001", "bearing_degradation")]["start_ms"] == 100_000
    assert any(r.get("end_ms") == 70_000 and r["fault"] == "sensor_dropout" for r in records)


def load_scenario_text(text: str, tmp: Path | None = None) -> Scenario:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.toml"
        path.write_text("\n".join(line.strip() for line in text.splitlines()))
        return load_scenario(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[fault]]\ntrain = "nope"\nkind = "spike"', "unknown train"),
        ('[[fault]]\ntrain = 0\nkind = "spike"\nchannel = "warp_core"', "unknown channel"),
        ('[[fault]]\ntrain = 0\nkind = "bearing_degradation"\nchannel = "speed"', "acts on"),
        ('[[fault]]\ntrain = 0\nkind = "link_outage"', "duration_s"),
        ('[[fault]]\ntrain = 0\nkind = "meteor"', "meteor"),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(text: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        ScenarioRunner(load_scenario_text(text), ["train-001"])


def test_json_scenarios_too(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"seed": 2, "fault": [{"train": 0, "kind": "hvac_failure", "at_s": 5}]}))
    assert load_scenario(path).fault[0].kind == "hvac_failure"


def test_the_engineers_failure_modes_show_as_they_would_and_reach_their_critical_band() -> None:
    """An air leak makes the compressor run more, then lose; a slow door's closings creep up; a
    wheel flat shakes its bogie more the faster the train goes; a worn pantograph drops out and
    arcs. The ground truth says when each reached its critical band."""
    names = [f"train-{i:03d}" for i in range(1, 6)]
    scenario = Scenario(seed=11, fault=[
        Fault(train=0, kind="air_leak", at_s=300, rate=30.0),
        Fault(train=1, kind="slow_door", channel="door_close_time_2", at_s=60, rate=60.0),
        Fault(train=2, kind="wheel_flat", channel="vibration_4", at_s=60, magnitude=60.0),
        Fault(train=3, kind="pantograph_fault", at_s=60, rate=10.0),
    ])
    truth = io.StringIO()
    model = FleetModel(5, seed=scenario.seed)
    values = _run(model, 1500, ScenarioRunner(scenario, names, truth))
    duty, healthy_duty = values[:, 0, INDEX["compressor_duty"]], values[:, 4, INDEX["compressor_duty"]]
    assert duty[-1] > 2 * duty[299] and duty[-1] > healthy_duty[-1] + 20
    assert values[-1, 0, INDEX["main_reservoir_pressure"]] < 7.5  # the compressor lost
    door = values[:, 1, INDEX["door_close_time_2"]]
    assert door[-1] > door[0] + 5 and np.ptp(values[:, 1, INDEX["door_close_time_1"]]) < 4
    speed, flat, sound = (values[60:, 2, INDEX[c]] for c in ("speed", "vibration_4", "vibration_3"))
    fast, slow = speed > 100, (speed > 5) & (speed < 40)
    assert fast.any() and slow.any()
    assert (flat - sound)[fast].mean() > 2 * (flat - sound)[slow].mean() > 0.2
    volts = values[60:, 3, INDEX["line_voltage"]]
    assert (volts < 15).sum() >= 20 and (volts > 29).sum() >= 20  # drops and arcs, 10 a minute
    assert ((values[:, 4, INDEX["line_voltage"]] > 17.5) & (values[:, 4, INDEX["line_voltage"]] < 29)).all()
    records = [json.loads(line) for line in truth.getvalue().splitlines()]
    critical = {r["fault"]: r["critical_ms"] for r in records if "critical_ms" in r}
    assert critical["pantograph_fault"] == 60_000  # sudden: critical at onset
    assert critical["wheel_flat"] == 60_000  # a 60 mm flat is at the limit already
    assert 60_000 < critical["slow_door"] < 1_500_000
    assert 300_000 < critical["air_leak"] < 1_500_000
    starts = {r["fault"]: r for r in records if "start_ms" in r}
    assert starts["air_leak"]["channels"] == ["main_reservoir_pressure", "compressor_duty"]


def test_a_day_has_a_depot_night_a_cold_start_and_service() -> None:
    """From 02:00: powered down (no readings) until the wake-up, then a cold train (cabin and
    bearings at the outside temperature, the main reservoir leaked down) pumped up and warmed
    before it runs."""
    model = FleetModel(6, seed=4, day=True, clock_s=2 * 3600.0)
    powered, first = np.zeros((6,), bool), np.full((6, len(CHANNELS)), np.nan)
    moving = np.zeros(6, bool)
    for _ in range(5 * 3600):
        snap = model.step(1.0)
        woke = snap.powered & ~powered
        first[woke] = snap.values[woke]
        powered |= snap.powered
        moving |= snap.speed_kmh > 10
        if snap.t_s < 2 * 3600:
            assert not snap.powered.any() and np.isnan(snap.values).all()
    assert powered.all() and moving.all()
    outside = first[:, INDEX["outside_temp"]]
    assert (np.abs(first[:, INDEX["cabin_temp_1"]] - outside) < 4).all()
    assert (np.abs(first[:, INDEX["bearing_temp_1"]] - outside) < 4).all()
    assert (first[:, INDEX["main_reservoir_pressure"]] < 6).all()
    assert (snap.values[:, INDEX["main_reservoir_pressure"]] > 7.5).all()
