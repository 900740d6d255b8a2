"""A fleet's physics, vectorised across trains with numpy: one `step()` advances every train.

Per train (see `sim.line`): runs between the stations of its line (accelerate, cruise at the
section's line speed, brake to a stop), dwells with doors open, turns round at the termini; with
`day=True` also its timetable (depot night, cold start, preparation, service) and its own weather.
From that, correlated signals:
- traction: tractive force = m·a + Davis resistance, with the passenger load in the mass; motor
  current ~ torque + power / voltage (negative while regenerating); the line voltage sags with the
  current drawn and wanders with the supply;
- motor windings and axle bearings: first-order thermal lag towards a target set by the outside
  temperature and load (current², speed, axle load), so temperatures trail the speed profile by
  minutes;
- bogie vibration with speed; brake cylinder pressure on friction braking and the holding brake at
  a stop; the main reservoir drawn down by brake applications and its own small leaks, refilled by
  a compressor between cut-in and cut-out (`compressor_duty`: the share of the last ~10 minutes it
  ran);
- doors: open seconds during a dwell, and each closing's duration (held until the next closing;
  now and then a passenger holds a door and it takes seconds longer);
- cabin climate held at a set point by the HVAC against the outside, the sun and the passengers;
  `outside_temp` reports the outside;
- every analogue sensor has noise and a slow calibration drift of its own (a healthy sensor drifts).
Faults (see `sim.scenario`) act on the physical state (extra heat, leaks, a flat wheel, a worn
pantograph, a dead HVAC, a slow door) or on the sensor output (stuck, dropout, spike), so a fault
shows up as the real failure would. A powered-down train reports nothing (NaN everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from railpulse_edge.sim.line import DAY_S, Line, Weather, passenger_demand, sunshine

__all__ = ["CHANNELS", "DEPOT", "INDEX", "PREP", "SERVICE", "FleetModel", "Snapshot"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

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
    *(f"door_close_time_{i}" for i in range(1, 5)),
    "compressor_duty",
    "outside_temp",
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
_DCLOSE = slice(33, 37)
_DUTY, _OUTSIDE = 37, 38

DEPOT, PREP, SERVICE = 0, 1, 2
"""A train's mode: powered down in the depot, being prepared (powered, standing), in service."""

_EMPTY_T, _LOAD_T = 200.0, 50.0  # tonnes: empty train, crush load; force kN = t * m/s²
_A_MAX, _B_SERVICE = 0.8, 0.9  # m/s²
_METRES_PER_DEG = 111_320.0
_COMPRESSOR_BAR_S = 0.03  # refill rate with the compressor running
_CUT_IN, _CUT_OUT = 8.0, 9.6  # bar
_DUTY_TAU_S = 600.0
_WHEEL_FLAT_G = 0.0008  # g RMS per mm of flat per m/s
_OBSTRUCTED = 0.01  # share of door closings a passenger holds up

# Calibration drift of a healthy sensor, 1 sigma per hour, in the channel's unit.
_DRIFT_PER_H = np.zeros(len(CHANNELS))
for _s, _sigma in ((_BEARING, 0.03), (_VIB, 0.0005), (_MCUR, 0.1), (_MTEMP, 0.03),
                   (_BRAKE, 0.001), (_CTEMP, 0.02), (_CHUM, 0.05), (slice(_RES, _RES + 1), 0.001),
                   (slice(_VOLT, _VOLT + 1), 0.003), (slice(_OUTSIDE, _OUTSIDE + 1), 0.02)):
    _DRIFT_PER_H[_s] = _sigma


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One step's output: `values[train, channel]` (NaN = no reading), speed and position;
    `powered` (a powered-down train sends nothing) and `in_tunnel` (no radio link there)."""

    t_s: float
    values: F64
    speed_kmh: F64
    lat: F64
    lon: F64
    powered: B
    in_tunnel: B


class FleetModel:
    """`n` trains. `day=False` (the default): in service from the start, on a mild day, at midday
    (the demo's and the stack tests' fleet). `day=True`: a whole timetable from `clock_s` (seconds
    after midnight; before 04:30 all trains are in the depot), cold and hot days."""

    def __init__(self, n: int, seed: int = 0, *, day: bool = False, clock_s: float = 12 * 3600.0) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.rng = rng
        self.t = 0.0
        self.clock0 = clock_s
        self.day = day
        self.line = Line.draw(n, rng)
        self.weather = Weather.draw(n, rng, mild=not day)
        self.wake_s = rng.uniform(4.5, 5.75, n) * 3600.0
        self.prep_s = rng.uniform(20.0, 35.0, n) * 60.0
        self.end_s = rng.uniform(23.0, 24.5, n) * 3600.0
        self.sec = (rng.random(n) * self.line.sections).astype(np.int64)
        self.fwd = rng.random(n) < 0.5
        rows = np.arange(n)
        self.x = rng.uniform(0.0, 0.8, n) * self.line.length[rows, self.sec]
        self.v = rng.uniform(0.3, 0.9, n) * self._vmax()
        self.accel = np.zeros(n)
        self.stop_t = np.zeros(n)  # seconds since arriving at the current stop
        self.dwell_len = np.zeros(n)
        self.door_window = np.zeros(n)
        self.dwelling = np.zeros(n, dtype=bool)
        self.load = rng.uniform(0.1, 0.4, n)
        self.dist = rng.uniform(0, 50_000.0, n)
        self.heading = rng.uniform(0, 2 * math.pi, n)
        self.lat0 = rng.uniform(47.0, 53.0, n)
        self.lon0 = rng.uniform(-1.0, 12.0, n)
        self.supply_period = rng.uniform(2.0, 6.0, n) * 3600.0
        self.supply_phase = rng.uniform(0, 2 * math.pi, n)
        self.base_leak = rng.uniform(0.0002, 0.0005, n)  # bar/s: every air system leaks a little
        self.aux_air = rng.uniform(0.002, 0.004, n)  # bar/s used while powered (suspension, doors)
        self.door_nominal = rng.uniform(2.8, 3.6, (n, 4))
        self.door_closing = self.door_nominal.copy()  # this stop's closing times (healthy doors)
        self.door_last = self.door_nominal.copy()  # the last closing's duration, as reported
        self.drift = rng.normal(0.0, 1.0, (n, len(CHANNELS))) * _DRIFT_PER_H
        amb = self.ambient()
        self.bearing = amb[:, None] + 18.0 + rng.normal(0, 1.0, (n, 8))
        self.bearing_offset = rng.normal(0, 1.5, (n, 8))
        self.motor = amb[:, None] + 35.0 + rng.normal(0, 2.0, (n, 4))
        self.brake = np.zeros((n, 2))
        self.reservoir = rng.uniform(8.5, 9.5, n)
        self.compressor = np.zeros(n, dtype=bool)
        self.duty = rng.uniform(0.05, 0.15, n)
        self.cabin = 21.5 + rng.normal(0, 0.5, (n, 2))
        self.humidity = 45.0 + rng.normal(0, 3.0, (n, 2))
        self.mode = np.full(n, SERVICE, np.int8)
        self.mode_since = np.zeros(n)
        if day:
            self.mode[:] = DEPOT
            self.v[:] = 0.0
            self.bearing = amb[:, None] + rng.normal(0, 0.5, (n, 8))
            self.motor = amb[:, None] + rng.normal(0, 0.5, (n, 4))
            self.reservoir = rng.uniform(0.5, 3.0, n)
            self.duty[:] = 0.0
            self.cabin = amb[:, None] + rng.normal(0, 0.5, (n, 2))
        # Fault state, written by sim.scenario.
        self.bearing_extra = np.zeros((n, 8))  # °C added to a bearing's thermal target
        self.motor_extra = np.zeros((n, 4))  # °C added to a motor's thermal target
        self.brake_leak = np.zeros((n, 2))  # fraction of cylinder pressure lost, 0..1
        self.reservoir_leak = np.zeros(n)  # bar/s lost through a leaking brake cylinder
        self.air_leak = np.zeros(n)  # bar/s lost from the main reservoir pipe
        self.door_extra = np.zeros((n, 4))  # s added to a door's closing time
        self.flat_mm = np.zeros((n, 4))  # length of a wheel flat on each bogie, mm
        self.panto_rate = np.zeros(n)  # contact-loss events per minute (a worn pantograph)
        self.panto_arc_kv = np.full(n, 8.0)  # height of an arcing spike
        self.panto_kick = np.zeros(n, dtype=bool)  # force an event on the next step
        self.hvac_ok = np.ones(n, dtype=bool)
        self.cabin_setpoint = np.full(n, 21.5)

    # -- time, weather -------------------------------------------------------------------------
    @property
    def clock_s(self) -> float:
        return self.clock0 + self.t

    def ambient(self) -> F64:
        return self.weather.at(self.clock0 + self.t)

    def _vmax(self) -> F64:
        result: F64 = self.line.vmax[np.arange(self.n), self.sec]
        return result

    def in_tunnel(self) -> B:
        rows = np.arange(self.n)
        length = self.line.length[rows, self.sec]
        pos = np.where(self.fwd, self.x, length - self.x)
        inside: B = (pos >= self.line.tunnel_from[rows, self.sec]) & (
            pos < self.line.tunnel_to[rows, self.sec]
        ) & (self.mode == SERVICE)
        return inside

    # -- timetable -----------------------------------------------------------------------------
    def _since_wake(self) -> F64:
        """Seconds since each train's wake-up time of the current (or last) day."""
        result: F64 = (self.clock_s % DAY_S - self.wake_s) % DAY_S
        return result

    def _timetable(self) -> None:
        if not self.day:
            return
        # Wake up: a cold start.
        wake = (self.mode == DEPOT) & (self._since_wake() < 3600.0)
        if wake.any():
            self.mode[wake] = PREP
            self.mode_since[wake] = self.t
            self.duty[wake] = 0.0
            self.compressor[wake] = False
            self.v[wake] = 0.0
        # Prepared: into service, starting with a dwell at the first station.
        ready = (self.mode == PREP) & (self.t - self.mode_since >= self.prep_s)
        if ready.any():
            self.mode[ready] = SERVICE
            self.mode_since[ready] = self.t
            self._arrive(ready, terminus=np.zeros(self.n, dtype=bool))

    # -- dynamics ------------------------------------------------------------------------------
    def _arrive(self, arrived: B, terminus: B) -> None:
        k = int(arrived.sum())
        rng = self.rng
        self.v[arrived] = 0.0
        self.dwelling[arrived] = True
        self.stop_t[arrived] = 0.0
        load = self.load[arrived]
        layover = terminus[arrived]
        window = np.where(layover, rng.uniform(40.0, 70.0, k), 15.0 + 30.0 * load + rng.uniform(0, 12, k))
        self.door_window[arrived] = window
        closing = self.door_nominal[arrived] + rng.normal(0, 0.12, (k, 4))
        held = rng.random((k, 4)) < _OBSTRUCTED
        closing += np.where(held, rng.uniform(1.5, 3.5, (k, 4)), 0.0)
        self.door_closing[arrived] = np.maximum(closing, 0.5)
        doors_done = 3.0 + window + (self.door_closing + self.door_extra)[arrived].max(axis=1) + 1.0
        self.dwell_len[arrived] = np.where(layover, rng.uniform(360.0, 900.0, k), doors_done)
        self.dwell_len[arrived] = np.maximum(self.dwell_len[arrived], doors_done)

    def _kinematics(self, dt: float) -> None:
        n = self.n
        rows = np.arange(n)
        v = self.v
        length = self.line.length[rows, self.sec]
        remaining = np.maximum(length - self.x, 0.1)
        running = (~self.dwelling) & (self.mode == SERVICE)
        vmax = self._vmax()
        stop_dist = v * v / (2 * _B_SERVICE) + 2.0 * v
        braking = running & (remaining <= stop_dist)
        a = np.where(v < vmax, _A_MAX * (1.0 - 0.6 * v / np.maximum(vmax, 1.0)), 0.0)
        a = np.where(v > vmax + 0.5, -0.3, a)  # a lower line speed ahead: brake down to it
        a = np.where(braking, -np.clip(v * v / (2 * remaining), 0.2, 1.3), a)
        a = np.where(running, a, 0.0)
        self.accel = a
        new_v = np.maximum(v + a * dt, 0.0)
        self.v = np.where(running, np.where(a > 0, np.minimum(new_v, vmax), new_v), 0.0)
        step = self.v * dt
        self.x += step
        self.dist += step
        arrived = running & braking & ((self.v < 0.5) | (self.x >= length))
        if arrived.any():
            last = np.where(self.fwd, self.sec == self.line.sections - 1, self.sec == 0)
            if self.day:
                # After the end of service the train goes to the depot from where it stops.
                late = arrived & (self._since_wake() >= self.end_s - self.wake_s)
                if late.any():
                    self.mode[late] = DEPOT
                    self.mode_since[late] = self.t
                    self.v[late] = 0.0
                    arrived = arrived & ~late
            self._arrive(arrived, terminus=arrived & last)
        self.stop_t = np.where(self.dwelling, self.stop_t + dt, 0.0)
        closing = self.door_closing + self.door_extra  # a slow door holds the train
        closes_at = 3.0 + self.door_window[:, None] + closing
        just_closed = self.dwelling[:, None] & (self.stop_t[:, None] - dt < closes_at) & (
            self.stop_t[:, None] >= closes_at
        )
        self.door_last = np.where(just_closed, closing, self.door_last)
        closed = self.stop_t >= closes_at.max(axis=1)
        depart = self.dwelling & (self.stop_t >= self.dwell_len) & closed
        if depart.any():
            k = int(depart.sum())
            last = np.where(self.fwd, self.sec == self.line.sections - 1, self.sec == 0)
            turn = depart & last
            self.fwd[turn] = ~self.fwd[turn]
            onward = depart & ~last
            self.sec[onward] = np.where(self.fwd[onward], self.sec[onward] + 1, self.sec[onward] - 1)
            self.dwelling[depart] = False
            self.x[depart] = 0.0
            demand = passenger_demand(self.clock_s) if self.day else 0.35
            self.load[depart] = np.clip(demand * self.rng.uniform(0.5, 1.3, k), 0.0, 1.0)

    def step(self, dt: float = 1.0) -> Snapshot:
        """Advance every train by `dt` seconds and return their sensor readings."""
        self.t += dt
        self._timetable()
        self._kinematics(dt)
        n, rng, v, a = self.n, self.rng, self.v, self.accel
        amb = self.ambient()
        powered = self.mode != DEPOT
        mass = _EMPTY_T + _LOAD_T * self.load

        resistance = (3.0 + 0.10 * v + 0.006 * v * v) * mass / _EMPTY_T  # kN (Davis)
        force = mass * a + np.where(v > 0.05, resistance, 0.0)  # kN
        power = force * v  # kW
        regen = np.where(force < 0, 0.6, 1.0)  # part of braking done by friction, not motors
        total_current = (1.5 * force + power / (0.9 * 2.0)) * regen  # A, over 4 motors
        imbalance = 1.0 + rng.normal(0, 0.02, (n, 4))
        currents = total_current[:, None] / 4.0 * imbalance

        lag = 1.0 - math.exp(-dt / 600.0)
        motor_target = amb[:, None] + np.where(powered, 30.0, 0.0)[:, None] + 0.0007 * currents**2
        self.motor += (motor_target + self.motor_extra * powered[:, None] - self.motor) * lag
        b_lag = 1.0 - math.exp(-dt / 900.0)
        bogie_load = np.repeat(np.abs(currents), 2, axis=1) / 250.0
        bearing_target = (amb[:, None] + np.where(v > 0.05, 10.0, 0.0)[:, None] + 4.0 * self.load[:, None]
                          + 0.5 * v[:, None] * (1.0 + 0.2 * bogie_load)
                          + self.bearing_offset * (v[:, None] > 0.05) + self.bearing_extra)
        self.bearing += (bearing_target - self.bearing) * b_lag

        excess = np.maximum(self.bearing_extra, 0.0).reshape(n, 4, 2).max(axis=2)
        # A wheel flat hammers the rail once per turn of the wheel: its share of the RMS grows with
        # the flat and with speed (the 1 Hz RMS cannot resolve the rotation frequency itself).
        flat = _WHEEL_FLAT_G * self.flat_mm * v[:, None] * (1.0 + 0.25 * rng.random((n, 4)))
        vibration = 0.15 + 0.012 * v[:, None] + 0.03 * excess + flat + np.abs(rng.normal(0, 0.03, (n, 4)))

        demand = np.clip(-a / 1.2, 0.0, 1.0)
        friction_share = np.where(v < 3.0, 1.0, 0.4)
        target_p = np.where(self.dwelling | (self.mode == PREP), 2.0, 3.8 * demand * friction_share)
        target_p = np.where(powered, target_p, 0.0)[:, None] * (1.0 - self.brake_leak)
        p_lag = 1.0 - math.exp(-dt / 1.5)
        applied = np.maximum(target_p - self.brake, 0.0).sum(axis=1)
        self.brake += (target_p - self.brake) * p_lag

        leak = self.base_leak + self.aux_air * powered + self.reservoir_leak + self.air_leak
        self.reservoir -= 0.05 * applied * p_lag + leak * dt
        self.compressor = powered & (
            (self.reservoir < _CUT_IN) | (self.compressor & (self.reservoir < _CUT_OUT))
        )
        self.reservoir += np.where(self.compressor, _COMPRESSOR_BAR_S * dt, 0.0)
        self.reservoir = np.clip(self.reservoir, 0.0, 10.5)
        d_lag = 1.0 - math.exp(-dt / _DUTY_TAU_S)
        self.duty += (self.compressor - self.duty) * d_lag

        open_for = self.stop_t - 3.0
        closes_at = self.door_window[:, None] + self.door_closing + self.door_extra
        doors_open = self.dwelling[:, None] & (open_for[:, None] >= 0) & (open_for[:, None] < closes_at)
        door_time = np.where(doors_open, open_for[:, None], 0.0) + rng.normal(0, 0.3, (n, 4)).clip(-0.5, 0.5)
        door_time = np.where(doors_open, np.maximum(door_time, 0.0), 0.0)

        sun = sunshine(self.clock_s) if self.day else 0.6
        setpoint = 21.5 + 0.2 * np.maximum(amb - 20.0, 0.0)
        self.cabin_setpoint = setpoint
        c_lag_hvac = 1.0 - math.exp(-dt / 300.0)
        c_lag_env = 1.0 - math.exp(-dt / 600.0)
        hvac = (self.hvac_ok & powered)[:, None]
        self.cabin += np.where(hvac, (setpoint[:, None] - self.cabin) * c_lag_hvac, 0.0)
        env_target = amb[:, None] + (6.0 * sun + 3.0 * self.load * powered)[:, None]
        env_weight = np.where(hvac, 0.15, 1.0) * np.where(doors_open[:, :2], 3.0, 1.0)
        self.cabin += (env_target - self.cabin) * c_lag_env * env_weight
        hum_target = np.where(hvac, 45.0, 60.0 + 15.0 * self.load[:, None])
        self.humidity += (hum_target - self.humidity) * c_lag_hvac + rng.normal(0, 0.05, (n, 2))

        supply = 25.0 + 0.6 * np.sin(2 * math.pi * self.t / self.supply_period + self.supply_phase)
        volts = supply - 0.0006 * np.abs(total_current) + rng.normal(0, 0.05, n)
        if self.panto_rate.any() or self.panto_kick.any():
            volts, currents = self._pantograph(volts, currents, v)

        out = np.empty((n, len(CHANNELS)))
        out[:, _BEARING] = self.bearing + rng.normal(0, 0.15, (n, 8))
        out[:, _VIB] = vibration
        out[:, _MCUR] = currents + rng.normal(0, 2.0, (n, 4))
        out[:, _MTEMP] = self.motor + rng.normal(0, 0.2, (n, 4))
        out[:, _BRAKE] = np.maximum(self.brake + rng.normal(0, 0.02, (n, 2)), 0.0)
        out[:, _DOOR] = door_time
        out[:, _CTEMP] = self.cabin + rng.normal(0, 0.1, (n, 2))
        out[:, _CHUM] = self.humidity
        out[:, _RES] = self.reservoir + rng.normal(0, 0.01, n)
        out[:, _VOLT] = volts
        out[:, _SPEED] = v * 3.6
        out[:, _DCLOSE] = self.door_last
        out[:, _DUTY] = 100.0 * self.duty
        out[:, _OUTSIDE] = amb + rng.normal(0, 0.1, n)
        out += self.drift * (self.t / 3600.0)
        out[:, _CHUM] = np.clip(out[:, _CHUM], 0.0, 100.0)
        out[:, _BRAKE] = np.maximum(out[:, _BRAKE], 0.0)
        out[~powered] = np.nan
        lat = self.lat0 + np.cos(self.heading) * self.dist / _METRES_PER_DEG
        lon = self.lon0 + np.sin(self.heading) * self.dist / (
            _METRES_PER_DEG * np.cos(np.radians(self.lat0))
        )
        return Snapshot(self.t, out, v * 3.6, np.clip(lat, -90, 90), (lon + 180.0) % 360.0 - 180.0,
                        powered, self.in_tunnel())

    def _pantograph(self, volts: F64, currents: F64, v: F64) -> tuple[F64, F64]:
        """A worn pantograph (or a damaged contact wire) loses contact now and then, more often at
        speed: the voltage it reports drops out, the motors lose their current, and when contact
        comes back it arcs (a spike of overvoltage)."""
        rng = self.rng
        chance = self.panto_rate / 60.0 * (0.3 + 0.7 * np.minimum(v / 20.0, 1.0))
        event = (self.panto_kick | (rng.random(self.n) < chance)) & (self.mode != DEPOT)
        self.panto_kick[:] = False
        if not event.any():
            return volts, currents
        arc = rng.random(self.n) < 0.5
        dropped = rng.uniform(0.0, 12.0, self.n)
        spiked = volts + self.panto_arc_kv * rng.uniform(0.8, 1.2, self.n)
        volts = np.where(event, np.where(arc, spiked, dropped), volts)
        currents = np.where((event & ~arc)[:, None], currents * 0.2, currents)
        return volts, currents
