"""Scenario files: failure modes scheduled on named trains, with ground truth written as they start.

TOML (or JSON with the same shape):

    seed = 7                      # the signal model's random seed (optional)
    [[fault]]
    train = "train-003"           # a thing name of the fleet (or its 0-based index)
    kind = "bearing_degradation"  # see FAULT_KINDS
    at_s = 120                    # start, in simulated seconds after the simulation starts
    duration_s = 900              # optional: the fault ends (outages need it)
    channel = "bearing_temp_3"    # the affected channel, where the kind has one
    rate = 40.0                   # severity: °C/h for heat faults, fraction/h for a brake leak
    magnitude = 80.0              # spike height, in the channel's unit

The ground truth file gets one JSON line per fault when it starts (and when it ends):
`{"train", "fault", "channel", "start_ms", "at_s", "end_ms"}`, so detection recall and delay can be
computed against the detector's anomalies.
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
from railpulse_edge.sim.model import CHANNELS, F64, INDEX, FleetModel

__all__ = ["FAULT_KINDS", "Fault", "Outage", "Scenario", "ScenarioRunner", "load_scenario"]

FaultKind = Literal[
    "bearing_degradation", "brake_leak", "motor_overheat", "stuck_sensor", "sensor_dropout",
    "spike", "hvac_failure", "link_outage",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]

_DEFAULT_CHANNEL = {
    "bearing_degradation": "bearing_temp_1",
    "motor_overheat": "motor_temp_1",
    "brake_leak": "brake_cyl_pressure_1",
    "stuck_sensor": "bearing_temp_1",
    "sensor_dropout": "bearing_temp_1",
    "spike": "bearing_temp_1",
}
_CHANNEL_PREFIX = {
    "bearing_degradation": "bearing_temp_",
    "motor_overheat": "motor_temp_",
    "brake_leak": "brake_cyl_pressure_",
}
_DEFAULT_RATE = {"bearing_degradation": 40.0, "motor_overheat": 60.0, "brake_leak": 0.6}


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    train: str | int
    kind: FaultKind
    at_s: float = 0.0
    duration_s: float | None = None
    channel: str | None = None
    rate: float | None = None
    magnitude: float = 80.0


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
    started: bool = False
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
            self._faults.append(_Active(f, train, channel))

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
                self._write(a, "start_ms", now_ms)
                if f.kind == "link_outage":
                    outages.append(Outage(a.train, float(f.duration_s or 0.0)))
            if not a.started or a.ended:
                continue
            elapsed = t_s - f.at_s
            if f.duration_s is not None and elapsed >= f.duration_s:
                a.ended = True
                self._reset(model, a)
                self._write(a, "end_ms", now_ms)
                continue
            self._physical(model, a, elapsed / 3600.0)
        return outages

    def _physical(self, model: FleetModel, a: _Active, hours: float) -> None:
        f, i = a.fault, a.train
        rate = f.rate if f.rate is not None else _DEFAULT_RATE.get(f.kind, 0.0)
        if f.kind == "bearing_degradation" and a.channel is not None:
            model.bearing_extra[i, a.channel - INDEX["bearing_temp_1"]] = min(rate * hours, 200.0)
        elif f.kind == "motor_overheat" and a.channel is not None:
            model.motor_extra[i, a.channel - INDEX["motor_temp_1"]] = min(rate * hours, 200.0)
        elif f.kind == "brake_leak" and a.channel is not None:
            loss = min(rate * hours, 0.9)
            model.brake_leak[i, a.channel - INDEX["brake_cyl_pressure_1"]] = loss
            model.reservoir_leak[i] = 0.004 * loss
        elif f.kind == "hvac_failure":
            model.hvac_ok[i] = False

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
                values[a.train, a.channel] += a.fault.magnitude
                if a.fault.duration_s is None:
                    a.ended = True  # a spike without a duration lasts one sample

    def _write(self, a: _Active, key: str, now_ms: int) -> None:
        if self.truth is None:
            return
        record = {
            "train": self.trains[a.train],
            "fault": a.fault.kind,
            "channel": CHANNELS[a.channel] if a.channel is not None else None,
            "at_s": a.fault.at_s,
            key: now_ms,
        }
        self.truth.write(json.dumps(record) + "\n")
        self.truth.flush()
