"""Scenario files: failure modes scheduled on named trains, with ground truth written as they go.

TOML (or JSON with the same shape):

    seed = 7                      # the signal model's random seed (optional)
    [[fault]]
    train = "train-003"           # a thing name of the fleet (or its 0-based index)
    kind = "bearing_degradation"  # see FAULT_KINDS
    at_s = 120                    # start, in simulated seconds after the simulation starts
    duration_s = 900              # optional: the fault ends (outages need it)
    channel = "bearing_temp_3"    # the affected channel, where the kind has one
    rate = 40.0                   # severity: how fast it develops (unit per kind, below)
    magnitude = 80.0              # severity: its size (spike height, initial flat, arc height)

The failure modes (`rate` / `magnitude` defaults in brackets):
- `bearing_degradation` (bearing_temp_N): the axle box heats up, `rate` degC/h added to its thermal
  target [40]; its bogie shakes a little more. Critical: the bearing reaches the catalogue's
  critical limit (120 degC).
- `motor_overheat` (motor_temp_N): a traction motor's cooling fails, `rate` degC/h [60]. Critical:
  the catalogue's critical limit (180 degC).
- `brake_leak` (brake_cyl_pressure_N): the cylinder loses `rate` of its pressure per hour [0.6,
  capped at 0.9], and the main reservoir the air. Critical: half the bogie's brake force gone.
- `air_leak` (main_reservoir_pressure): a main reservoir pipe leaks, growing by `rate` bar/min per
  hour [0.3]; the compressor runs longer and more often to hold pressure (`compressor_duty`) until
  it cannot. Critical: the reservoir below the catalogue's critical minimum (6 bar).
- `slow_door` (door_close_time_N): a door's closing time creeps up by `rate` s/h [1.0] (a worn
  roller, debris in the track). Critical: closing takes the catalogue's critical limit (12 s).
- `wheel_flat` (vibration_N): a wheel of the bogie slid and has a flat of `magnitude` mm [25] that
  grows by `rate` mm/h [4]; it hammers once per wheel turn, so the bogie's vibration grows with
  the flat and with speed. Critical: a 60 mm flat (withdraw the train).
- `pantograph_fault` (line_voltage): a worn pantograph or damaged contact wire loses contact
  `rate` times a minute [2] (more at speed, the first at onset): the voltage drops out, the motor
  current with it, or the contact arcs, a spike of `magnitude` kV [8]. Critical: at onset.
- `hvac_failure`: the HVAC stops; the cabins drift with the outside, the sun and the passengers,
  humidity rises. Critical: a cabin outside the catalogue's operating range (the comfort band).
- `stuck_sensor`, `sensor_dropout`, `spike` (any channel): act on the reading, not the physics;
  a spike adds `magnitude` [80] for one sample (or `duration_s`). Critical: at onset.
- `link_outage`: not a failure of the train: a tunnel; the train spools and backfills.

The ground truth file gets one JSON line per fault when it starts, when it first reaches its
critical band and when it ends: `{"train", "fault", "channel", "channels", "at_s", "rate",
"magnitude", "start_ms" | "critical_ms" | "end_ms"}`; `channels` are the channels that show the
fault (a detection names one of them), so detection recall and delay can be computed against the
detector's anomalies.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import msgspec
import numpy as np

from railpulse_edge.errors import ScenarioError
from railpulse_edge.sim.model import CHANNELS, DEPOT, F64, INDEX, FleetModel
from railpulse_shared.catalogue import load_catalogue

__all__ = [
    "FAULT_KINDS",
    "SUDDEN_KINDS",
    "Fault",
    "Outage",
    "Scenario",
    "ScenarioRunner",
    "default_severity",
    "fault_channels",
    "load_scenario",
]

FaultKind = Literal[
    "bearing_degradation", "brake_leak", "motor_overheat", "stuck_sensor", "sensor_dropout",
    "spike", "hvac_failure", "link_outage", "air_leak", "slow_door", "wheel_flat",
    "pantograph_fault",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]

_DEFAULT_CHANNEL = {
    "bearing_degradation": "bearing_temp_1",
    "motor_overheat": "motor_temp_1",
    "brake_leak": "brake_cyl_pressure_1",
    "stuck_sensor": "bearing_temp_1",
    "sensor_dropout": "bearing_temp_1",
    "spike": "bearing_temp_1",
    "air_leak": "main_reservoir_pressure",
    "slow_door": "door_close_time_1",
    "wheel_flat": "vibration_1",
    "pantograph_fault": "line_voltage",
}
_CHANNEL_PREFIX = {
    "bearing_degradation": "bearing_temp_",
    "motor_overheat": "motor_temp_",
    "brake_leak": "brake_cyl_pressure_",
    "air_leak": "main_reservoir_pressure",
    "slow_door": "door_close_time_",
    "wheel_flat": "vibration_",
    "pantograph_fault": "line_voltage",
}
_DEFAULT_RATE = {
    "bearing_degradation": 40.0, "motor_overheat": 60.0, "brake_leak": 0.6, "air_leak": 0.3,
    "slow_door": 1.0, "wheel_flat": 4.0, "pantograph_fault": 2.0,
}
_DEFAULT_MAGNITUDE = {"spike": 80.0, "wheel_flat": 25.0, "pantograph_fault": 8.0}
_CRITICAL_FLAT_MM = 60.0
SUDDEN_KINDS = frozenset({"stuck_sensor", "sensor_dropout", "spike", "pantograph_fault"})
"""Faults that are critical from their onset (the others are drifts that get there, or not)."""
_CRITICAL_BRAKE_LOSS = 0.5


def default_severity(kind: str) -> tuple[float | None, float | None]:
    """(rate, magnitude) of `kind` when the scenario gives none (None: the kind has no such)."""
    return _DEFAULT_RATE.get(kind), _DEFAULT_MAGNITUDE.get(kind)


def fault_channels(kind: str, channel: str | None) -> tuple[str, ...]:
    """The channels in which a fault of `kind` on `channel` shows: an alert naming one of them
    names the fault."""
    if kind == "hvac_failure":
        return ("cabin_temp_1", "cabin_temp_2", "cabin_humidity_1", "cabin_humidity_2")
    if kind == "link_outage" or channel is None:
        return ()
    number = channel.rsplit("_", 1)[-1]
    if kind == "bearing_degradation":
        return (channel, f"vibration_{(int(number) - 1) // 2 + 1}")
    if kind == "brake_leak":
        return (channel, "main_reservoir_pressure", "compressor_duty")
    if kind == "air_leak":
        return ("main_reservoir_pressure", "compressor_duty")
    if kind == "slow_door":
        return (channel, f"door_open_time_{number}")
    if kind == "pantograph_fault":
        return ("line_voltage", *(f"motor_current_{i}" for i in range(1, 5)))
    return (channel,)


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    train: str | int
    kind: FaultKind
    at_s: float = 0.0
    duration_s: float | None = None
    channel: str | None = None
    rate: float | None = None
    magnitude: float | None = None


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    fault: list[Fault] = msgspec.field(default_factory=list)


def load_scenario(path: Path | str) -> Scenario:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
        return msgspec.convert(raw, Scenario)
    except (OSError, ValueError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ScenarioError(f"scenario {p}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Outage:
    train: int
    seconds: float


@dataclass
class _Active:
    fault: Fault
    train: int
    channel: int | None
    rate: float
    magnitude: float
    started: bool = False
    critical: bool = False
    ended: bool = False
    stuck_value: float = math.nan


@dataclass
class ScenarioRunner:
    """Applies a scenario's faults to a FleetModel step by step and records the ground truth."""

    scenario: Scenario
    trains: list[str]
    truth: IO[str] | None = None
    _faults: list[_Active] = field(default_factory=list)

    def __post_init__(self) -> None:
        index = {name: i for i, name in enumerate(self.trains)}
        for f in self.scenario.fault:
            if isinstance(f.train, int):
                if not 0 <= f.train < len(self.trains):
                    raise ScenarioError(f"fault on train #{f.train}: the fleet has {len(self.trains)}")
                train = f.train
            elif f.train in index:
                train = index[f.train]
            else:
                raise ScenarioError(f"fault on unknown train {f.train!r}")
            channel = self._channel(f)
            if f.kind == "link_outage" and not f.duration_s:
                raise ScenarioError(f"link_outage on {f.train!r} needs duration_s")
            rate, magnitude = default_severity(f.kind)
            self._faults.append(_Active(
                f, train, channel,
                rate=f.rate if f.rate is not None else (rate or 0.0),
                magnitude=f.magnitude if f.magnitude is not None else (magnitude or 0.0),
            ))
        catalogue = load_catalogue()
        self._critical_high = {
            name: catalogue.channels[name].critical[1]
            for name in ("bearing_temp_1", "motor_temp_1", "door_close_time_1")
        }
        self._reservoir_min = catalogue.channels["main_reservoir_pressure"].critical[0]
        self._comfort = catalogue.channels["cabin_temp_1"].operating

    @staticmethod
    def _channel(f: Fault) -> int | None:
        if f.kind in ("hvac_failure", "link_outage"):
            return None
        name = f.channel or _DEFAULT_CHANNEL[f.kind]
        if name not in INDEX:
            raise ScenarioError(f"{f.kind}: unknown channel {name!r} (known: {', '.join(CHANNELS)})")
        prefix = _CHANNEL_PREFIX.get(f.kind)
        if prefix and not name.startswith(prefix):
            raise ScenarioError(f"{f.kind} acts on {prefix}N channels, not {name!r}")
        return INDEX[name]

    def before_step(self, model: FleetModel, t_s: float, now_ms: int) -> list[Outage]:
        """Start and end faults due at `t_s`; set physical fault state. Returns new outages."""
        outages: list[Outage] = []
        for a in self._faults:
            f = a.fault
            if not a.started and t_s >= f.at_s:
                a.started = True
                a.critical = f.kind in SUDDEN_KINDS  # the start record says so
                self._write(a, "start_ms", now_ms)
                if f.kind == "link_outage":
                    outages.append(Outage(a.train, float(f.duration_s or 0.0)))
                elif f.kind == "pantograph_fault":
                    model.panto_kick[a.train] = True
            if not a.started or a.ended:
                continue
            elapsed = t_s - f.at_s
            if f.duration_s is not None and elapsed >= f.duration_s:
                a.ended = True
                self._reset(model, a)
                self._write(a, "end_ms", now_ms)
                continue
            self._physical(model, a, elapsed / 3600.0)
            if not a.critical and f.kind != "link_outage" and self._is_critical(model, a):
                a.critical = True
                self._write(a, "critical_ms", now_ms)
        return outages

    def _physical(self, model: FleetModel, a: _Active, hours: float) -> None:
        f, i, rate = a.fault, a.train, a.rate
        c = a.channel
        if f.kind == "bearing_degradation" and c is not None:
            model.bearing_extra[i, c - INDEX["bearing_temp_1"]] = min(rate * hours, 200.0)
        elif f.kind == "motor_overheat" and c is not None:
            model.motor_extra[i, c - INDEX["motor_temp_1"]] = min(rate * hours, 200.0)
        elif f.kind == "brake_leak" and c is not None:
            loss = min(rate * hours, 0.9)
            model.brake_leak[i, c - INDEX["brake_cyl_pressure_1"]] = loss
            model.reservoir_leak[i] = 0.004 * loss
        elif f.kind == "air_leak":
            model.air_leak[i] = min(rate * hours, 3.0) / 60.0
        elif f.kind == "slow_door" and c is not None:
            model.door_extra[i, c - INDEX["door_close_time_1"]] = min(rate * hours, 40.0)
        elif f.kind == "wheel_flat" and c is not None:
            model.flat_mm[i, c - INDEX["vibration_1"]] = min(a.magnitude + rate * hours, 120.0)
        elif f.kind == "pantograph_fault":
            model.panto_rate[i] = rate
            model.panto_arc_kv[i] = a.magnitude
        elif f.kind == "hvac_failure":
            model.hvac_ok[i] = False

    def _is_critical(self, model: FleetModel, a: _Active) -> bool:
        """Has the fault reached its critical band (see the module docstring), on the true
        (noiseless) physical state?"""
        kind, i, c = a.fault.kind, a.train, a.channel
        if kind == "bearing_degradation" and c is not None:
            return bool(model.bearing[i, c - INDEX["bearing_temp_1"]] >= self._critical_high["bearing_temp_1"])
        if kind == "motor_overheat" and c is not None:
            return bool(model.motor[i, c - INDEX["motor_temp_1"]] >= self._critical_high["motor_temp_1"])
        if kind == "brake_leak" and c is not None:
            return bool(model.brake_leak[i, c - INDEX["brake_cyl_pressure_1"]] >= _CRITICAL_BRAKE_LOSS)
        if kind == "air_leak":
            return bool(model.mode[i] != DEPOT and model.reservoir[i] < self._reservoir_min
                        and model.air_leak[i] > 0.0 and model.t - model.mode_since[i] > 900.0)
        if kind == "slow_door" and c is not None:
            k = c - INDEX["door_close_time_1"]
            closing = model.door_nominal[i, k] + model.door_extra[i, k]
            return bool(closing >= self._critical_high["door_close_time_1"])
        if kind == "wheel_flat" and c is not None:
            return bool(model.flat_mm[i, c - INDEX["vibration_1"]] >= _CRITICAL_FLAT_MM)
        if kind == "hvac_failure":
            low, high = self._comfort
            return bool(model.mode[i] != DEPOT and ((model.cabin[i] < low) | (model.cabin[i] > high)).any())
        return True  # sudden faults: critical from the start

    @staticmethod
    def _reset(model: FleetModel, a: _Active) -> None:
        i, c = a.train, a.channel
        kind = a.fault.kind
        if kind == "bearing_degradation" and c is not None:
            model.bearing_extra[i, c - INDEX["bearing_temp_1"]] = 0.0
        elif kind == "motor_overheat" and c is not None:
            model.motor_extra[i, c - INDEX["motor_temp_1"]] = 0.0
        elif kind == "brake_leak" and c is not None:
            model.brake_leak[i, c - INDEX["brake_cyl_pressure_1"]] = 0.0
            model.reservoir_leak[i] = 0.0
        elif kind == "air_leak":
            model.air_leak[i] = 0.0
        elif kind == "slow_door" and c is not None:
            model.door_extra[i, c - INDEX["door_close_time_1"]] = 0.0
        elif kind == "wheel_flat" and c is not None:
            model.flat_mm[i, c - INDEX["vibration_1"]] = 0.0
        elif kind == "pantograph_fault":
            model.panto_rate[i] = 0.0
        elif kind == "hvac_failure":
            model.hvac_ok[i] = True

    def after_step(self, values: F64) -> None:
        """Sensor faults: act on what the sensors report, not on the physics."""
        for a in self._faults:
            if not a.started or a.ended or a.channel is None:
                continue
            kind = a.fault.kind
            if kind == "stuck_sensor":
                if math.isnan(a.stuck_value):
                    a.stuck_value = float(values[a.train, a.channel])
                values[a.train, a.channel] = a.stuck_value
            elif kind == "sensor_dropout":
                values[a.train, a.channel] = np.nan
            elif kind == "spike":
                values[a.train, a.channel] += a.magnitude
                if a.fault.duration_s is None:
                    a.ended = True  # a spike without a duration lasts one sample

    def _write(self, a: _Active, key: str, now_ms: int) -> None:
        if self.truth is None:
            return
        channel = CHANNELS[a.channel] if a.channel is not None else None
        record = {
            "train": self.trains[a.train],
            "fault": a.fault.kind,
            "channel": channel,
            "channels": list(fault_channels(a.fault.kind, channel)),
            "at_s": a.fault.at_s,
            "rate": a.rate,
            "magnitude": a.magnitude,
            key: now_ms,
        }
        if key == "start_ms" and a.fault.kind in SUDDEN_KINDS:
            record["critical_ms"] = now_ms
        self.truth.write(json.dumps(record) + "\n")
        self.truth.flush()
