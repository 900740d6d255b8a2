"""A fleet's physics, vectorised across trains with numpy: one `step()` advances every train.

Per train: a run between stations (accelerate, cruise at the line speed, brake to a stop at the
next station), a dwell with doors open, and again. From that, correlated signals:
- traction: tractive force = m·a + Davis resistance; motor current ~ torque + power / voltage
  (negative while regenerating), line voltage sags with the fleet's current draw;
- motor windings and axle bearings: first-order thermal lag towards a target set by ambient and
  load (current², speed), so temperatures trail the speed profile by minutes;
- bogie vibration with speed; brake cylinder pressure on friction braking and the holding brake
  at a stop; main reservoir drawn down by brake applications and refilled by a compressor;
- doors: seconds open during a dwell; cabin climate held at a set point by HVAC against ambient.
Faults (see `sim.faults`) act on the physical state (extra heat, leaks, a dead HVAC) or on the
sensor output (stuck, dropout, spike), so a fault shows up as the real failure would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CHANNELS", "FleetModel", "Snapshot"]

F64 = npt.NDArray[np.float64]

CHANNELS: tuple[str, ...] = (
    *(f"bearing_temp_{i}" for i in range(1, 9)),
    *(f"vibration_{i}" for i in range(1, 5)),
    *(f"motor_current_{i}" for i in range(1, 5)),
    *(f"motor_temp_{i}" for i in range(1, 5)),
    *(f"brake_cyl_pressure_{i}" for i in range(1, 3)),
    *(f"door_open_time_{i}" for i in range(1, 5)),
    *(f"cabin_temp_{i}" for i in range(1, 3)),
    *(f"cabin_humidity_{i}" for i in range(1, 3)),
    "main_reservoir_pressure",
    "line_voltage",
    "speed",
)
INDEX = {name: i for i, name in enumerate(CHANNELS)}
_BEARING = slice(0, 8)
_VIB = slice(8, 12)
_MCUR = slice(12, 16)
_MTEMP = slice(16, 20)
_BRAKE = slice(20, 22)
_DOOR = slice(22, 26)
_CTEMP = slice(26, 28)
_CHUM = slice(28, 30)
_RES, _VOLT, _SPEED = 30, 31, 32

_MASS_T = 200.0  # train mass, tonnes: force in kN = tonnes * m/s²
_A_MAX, _B_SERVICE = 0.8, 0.9  # m/s²
_METRES_PER_DEG = 111_320.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One step's output: `values[train, channel]` (NaN = no reading), speed and position."""

    t_s: float
    values: F64
    speed_kmh: F64
    lat: F64
    lon: F64


class FleetModel:
    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.rng = rng
        self.t = 0.0
        self.ambient_base = rng.uniform(4.0, 24.0, n)
        self.seg_len = rng.uniform(2_000.0, 8_000.0, n)
        self.x = rng.uniform(0.0, 1.0, n) * self.seg_len * 0.8
        self.vmax = rng.uniform(70.0, 160.0, n) / 3.6
        self.v = rng.uniform(0.3, 0.9, n) * self.vmax
        self.dwell_left = np.zeros(n)
        self.dwell_len = np.zeros(n)
        self.dwelling = np.zeros(n, dtype=bool)
        self.dist = rng.uniform(0, 50_000.0, n)
        self.heading = rng.uniform(0, 2 * math.pi, n)
        self.lat0 = rng.uniform(47.0, 53.0, n)
        self.lon0 = rng.uniform(-1.0, 12.0, n)
        amb = self.ambient()
        self.bearing = amb[:, None] + 18.0 + rng.normal(0, 1.0, (n, 8))
        self.bearing_offset = rng.normal(0, 1.5, (n, 8))
        self.motor = amb[:, None] + 35.0 + rng.normal(0, 2.0, (n, 4))
        self.brake = np.zeros((n, 2))
        self.reservoir = rng.uniform(8.5, 9.5, n)
        self.compressor = np.zeros(n, dtype=bool)
        self.cabin = 21.5 + rng.normal(0, 0.5, (n, 2))
        self.humidity = 45.0 + rng.normal(0, 3.0, (n, 2))
        self.accel = np.zeros(n)
        # Fault state, written by sim.faults.
        self.bearing_extra = np.zeros((n, 8))  # °C added to a bearing's thermal target
        self.motor_extra = np.zeros((n, 4))  # °C added to a motor's thermal target
        self.brake_leak = np.zeros((n, 2))  # fraction of cylinder pressure lost, 0..1
        self.reservoir_leak = np.zeros(n)  # bar/s
        self.hvac_ok = np.ones(n, dtype=bool)

    def ambient(self) -> F64:
        daily = 4.0 * math.sin(2 * math.pi * (self.t / 86_400.0 - 0.25))
        result: F64 = self.ambient_base + daily
        return result

    # -- dynamics ------------------------------------------------------------------------------
    def _kinematics(self, dt: float) -> None:
        v, remaining = self.v, np.maximum(self.seg_len - self.x, 0.1)
        running = ~self.dwelling
        stop_dist = v * v / (2 * _B_SERVICE) + 2.0 * v
        braking = running & (remaining <= stop_dist)
        a = np.where(v < self.vmax, _A_MAX * (1.0 - 0.6 * v / np.maximum(self.vmax, 1.0)), 0.0)
        a = np.where(braking, -np.clip(v * v / (2 * remaining), 0.2, 1.3), a)
        a = np.where(running, a, 0.0)
        self.accel = a
        self.v = np.where(running, np.clip(v + a * dt, 0.0, self.vmax), 0.0)
        step = self.v * dt
        self.x += step
        self.dist += step
        arrived = running & braking & ((self.v < 0.5) | (self.x >= self.seg_len))
        if arrived.any():
            self.v[arrived] = 0.0
            self.dwelling[arrived] = True
            self.dwell_len[arrived] = self.rng.uniform(30.0, 70.0, int(arrived.sum()))
            self.dwell_left[arrived] = self.dwell_len[arrived]
        self.dwell_left = np.where(self.dwelling, self.dwell_left - dt, 0.0)
        depart = self.dwelling & (self.dwell_left <= 0)
        if depart.any():
            k = int(depart.sum())
            self.dwelling[depart] = False
            self.x[depart] = 0.0
            self.seg_len[depart] = self.rng.uniform(2_000.0, 8_000.0, k)
            self.vmax[depart] = self.rng.uniform(70.0, 160.0, k) / 3.6

    def step(self, dt: float = 1.0) -> Snapshot:
        """Advance every train by `dt` seconds and return their sensor readings."""
        self.t += dt
        self._kinematics(dt)
        n, rng, v, a = self.n, self.rng, self.v, self.accel
        amb = self.ambient()

        resistance = 3.0 + 0.10 * v + 0.006 * v * v  # kN (Davis)
        force = _MASS_T * a + np.where(v > 0.05, resistance, 0.0)  # kN
        power = force * v  # kW
        regen = np.where(force < 0, 0.6, 1.0)  # part of braking done by friction, not motors
        total_current = (1.5 * force + power / (0.9 * 2.0)) * regen  # A, over 4 motors
        imbalance = 1.0 + rng.normal(0, 0.02, (n, 4))
        currents = total_current[:, None] / 4.0 * imbalance

        lag = 1.0 - math.exp(-dt / 600.0)
        motor_target = amb[:, None] + 30.0 + 0.0007 * currents**2 + self.motor_extra
        self.motor += (motor_target - self.motor) * lag
        b_lag = 1.0 - math.exp(-dt / 900.0)
        bogie_load = np.repeat(np.abs(currents), 2, axis=1) / 250.0
        bearing_target = (amb[:, None] + 10.0 + 0.5 * v[:, None] * (1.0 + 0.2 * bogie_load)
                          + self.bearing_offset + self.bearing_extra)
        self.bearing += (bearing_target - self.bearing) * b_lag

        excess = np.maximum(self.bearing_extra, 0.0).reshape(n, 4, 2).max(axis=2)
        vibration = 0.15 + 0.012 * v[:, None] + 0.03 * excess + np.abs(rng.normal(0, 0.03, (n, 4)))

        demand = np.clip(-a / 1.2, 0.0, 1.0)
        friction_share = np.where(v < 3.0, 1.0, 0.4)
        target_p = np.where(self.dwelling, 2.0, 3.8 * demand * friction_share)
        target_p = target_p[:, None] * (1.0 - self.brake_leak)
        p_lag = 1.0 - math.exp(-dt / 1.5)
        applied = np.maximum(target_p - self.brake, 0.0).sum(axis=1)
        self.brake += (target_p - self.brake) * p_lag

        self.reservoir -= 0.02 * applied * p_lag + 0.0005 * dt + self.reservoir_leak * dt
        self.compressor = (self.reservoir < 8.0) | (self.compressor & (self.reservoir < 9.6))
        self.reservoir += np.where(self.compressor, 0.04 * dt, 0.0)
        self.reservoir = np.clip(self.reservoir, 0.0, 10.5)

        open_for = self.dwell_len - self.dwell_left - 3.0
        doors_open = self.dwelling & (open_for > 0) & (self.dwell_left > 4.0)
        door_time = np.where(doors_open, open_for, 0.0)[:, None] + rng.normal(0, 0.3, (n, 4)).clip(-0.5, 0.5)
        door_time = np.where(doors_open[:, None], np.maximum(door_time, 0.0), 0.0)

        c_lag_hvac = 1.0 - math.exp(-dt / 300.0)
        c_lag_env = 1.0 - math.exp(-dt / 600.0)
        hvac = self.hvac_ok[:, None]
        solar = 6.0
        self.cabin += np.where(hvac, (21.5 - self.cabin) * c_lag_hvac, 0.0)
        env_target = amb[:, None] + np.where(hvac, 0.0, solar)
        env_weight = np.where(hvac, 0.15, 1.0) * np.where(doors_open[:, None], 3.0, 1.0)
        self.cabin += (env_target - self.cabin) * c_lag_env * env_weight
        hum_target = np.where(hvac, 45.0, 72.0)
        self.humidity += (hum_target - self.humidity) * c_lag_hvac + rng.normal(0, 0.05, (n, 2))

        out = np.empty((n, len(CHANNELS)))
        out[:, _BEARING] = self.bearing + rng.normal(0, 0.15, (n, 8))
        out[:, _VIB] = vibration
        out[:, _MCUR] = currents + rng.normal(0, 2.0, (n, 4))
        out[:, _MTEMP] = self.motor + rng.normal(0, 0.2, (n, 4))
        out[:, _BRAKE] = np.maximum(self.brake + rng.normal(0, 0.02, (n, 2)), 0.0)
        out[:, _DOOR] = door_time
        out[:, _CTEMP] = self.cabin + rng.normal(0, 0.1, (n, 2))
        out[:, _CHUM] = np.clip(self.humidity, 0.0, 100.0)
        out[:, _RES] = self.reservoir + rng.normal(0, 0.01, n)
        out[:, _VOLT] = 25.3 - 0.0006 * np.abs(total_current) + rng.normal(0, 0.05, n)
        out[:, _SPEED] = v * 3.6
        lat = self.lat0 + np.cos(self.heading) * self.dist / _METRES_PER_DEG
        lon = self.lon0 + np.sin(self.heading) * self.dist / (
            _METRES_PER_DEG * np.cos(np.radians(self.lat0))
        )
        return Snapshot(self.t, out, v * 3.6, np.clip(lat, -90, 90), (lon + 180.0) % 360.0 - 180.0)
