"""What a simulated train's day is made of: its line, its timetable and its weather.

- **Line**: each train shuttles on its own line of 8-24 stations (1.5-9 km apart, a line speed per
  section of 60-160 km/h), with tunnels on about a quarter of the sections; it turns round at
  either end after a layover.
- **Timetable** (`day=True`): the train sleeps in the depot (powered down: no frames), wakes at
  04:30-05:45 (a cold start: everything at the outside temperature, the main reservoir leaked down
  overnight), is prepared for 20-35 minutes (the compressor pumps up, the HVAC preconditions), runs
  until 23:00-00:30 and goes back to the depot at the next station it reaches.
- **Load**: passengers board by time of day (morning and evening peaks), 0 (empty) to 1 (crush
  load, +50 t); dwells grow with the load.
- **Weather**: each train and day gets its own day, cold (down to -12 degC) to hot (up to 36 degC),
  coldest at 05:00 and warmest at 15:00, with sunshine in the day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DAY_S", "Line", "Weather", "passenger_demand", "sunshine"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DAY_S = 86_400.0
MAX_SECTIONS = 24
_WEATHER_DAYS = 32


@dataclass(frozen=True, slots=True)
class Line:
    """Per train: `sections` (n,) sections in use of `length` and `vmax` (n, MAX_SECTIONS), and the
    tunnel in each section as [start, end) metres from the section's forward start (empty = none)."""

    sections: I64
    length: F64
    vmax: F64
    tunnel_from: F64
    tunnel_to: F64

    @staticmethod
    def draw(n: int, rng: np.random.Generator) -> Line:
        shape = (n, MAX_SECTIONS)
        length = rng.uniform(1_500.0, 9_000.0, shape)
        start = rng.uniform(0.1, 0.7, shape) * length
        span = np.minimum(rng.uniform(200.0, 3_000.0, shape), 0.85 * length - start)
        has = rng.random(shape) < 0.25
        return Line(
            sections=rng.integers(7, MAX_SECTIONS + 1, n),
            length=length,
            vmax=rng.uniform(60.0, 160.0, shape) / 3.6,
            tunnel_from=np.where(has, start, 0.0),
            tunnel_to=np.where(has, start + span, 0.0),
        )


@dataclass(frozen=True, slots=True)
class Weather:
    """Daily mean outside temperature per train and day (n, days), and the daily swing (n, days)."""

    mean: F64
    swing: F64

    @staticmethod
    def draw(n: int, rng: np.random.Generator, mild: bool) -> Weather:
        shape = (n, _WEATHER_DAYS)
        # Mild: the demo's and the stack tests' spring day; else cold, mild and hot days alike.
        low, high = (8.0, 20.0) if mild else (-4.0, 28.0)
        mean = rng.uniform(low, high, shape)
        return Weather(mean, rng.uniform(2.5, 8.0, shape))

    def at(self, clock_s: float) -> F64:
        """Outside temperature (n,) at `clock_s` seconds after the first midnight."""
        day = min(int(clock_s // DAY_S), _WEATHER_DAYS - 1)
        hour = (clock_s % DAY_S) / 3600.0
        # Coldest at 05:00, warmest at 15:00: ten hours of warming, fourteen of cooling.
        if 5.0 <= hour <= 15.0:
            wave = -math.cos(math.pi * (hour - 5.0) / 10.0)
        else:
            wave = math.cos(math.pi * ((hour - 15.0) % 24.0) / 14.0)
        result: F64 = self.mean[:, day] + self.swing[:, day] * wave
        return result


def sunshine(clock_s: float) -> float:
    """0 at night, 1 at noon."""
    hour = (clock_s % DAY_S) / 3600.0
    return max(0.0, math.sin(math.pi * (hour - 6.0) / 13.0)) if 6.0 <= hour <= 19.0 else 0.0


def passenger_demand(clock_s: float) -> float:
    """Typical load (0..1) by time of day: morning and evening peaks over a midday level."""
    h = (clock_s % DAY_S) / 3600.0
    return min(
        1.0,
        0.12
        + 0.25 * math.exp(-(((h - 13.0) / 3.5) ** 2))
        + 0.65 * math.exp(-(((h - 8.0) / 1.1) ** 2))
        + 0.55 * math.exp(-(((h - 17.6) / 1.4) ** 2)),
    )
