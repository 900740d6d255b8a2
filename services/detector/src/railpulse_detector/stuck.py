"""Stuck sensors: a run of identical readings judged by how often this channel, on this train,
repeats its previous reading exactly when it is healthy.

A live sensor's reading carries noise below its resolution, so a healthy bearing thermometer
repeats its last reading (to the thousandth) about once in 500 frames and almost never twice in a
row, while a door timer holds its value for minutes and a traction current sits at zero while
the train stands. No fixed count of identical frames fits both; what fits is learnt per (train,
channel), online, in each operating state (standing, moving: a channel need not vary when the
train stands, and the train's own speed says which):

- p0 = P(a reading repeats the previous one | the previous one did not repeat its own),
- q  = P(a reading repeats the previous one | the previous one did: the run goes on).

Two rates, not one, because repeats may come in runs (a channel that holds a value holds it for
a while): with independent repeats q equals p0; with runs q is near 1. The chance that a run of
identical readings started in state s0 and went on for k0 frames standing and k1 moving is
p0(s0) q(0)^k0 q(1)^k1. Among the `readings_per_day` frames of a train-day there are at most as
many starts, so a run whose chance is below `budget / readings_per_day` (`budget`: false alarms
per channel-day) is a stuck sensor: a healthy channel raises it with a frequency below the budget.

- Priors are conservative: p0 starts at 1/2 (one pseudo-repeat in two pseudo-frames); q starts
  at p0 (until the channel shows its repeats come in runs, they are taken to be independent) with
  the weight of as many frames as p0 is known from, at most `_PRIOR_WEIGHT`. The run's own
  readings are counted as they come, so a channel with no history that holds a value from the
  start learns that it holds and never alarms.
- Counts are exponentially forgotten over `horizon` frames (per kind of transition), so the rates
  follow a sensor that ages, and the state stays 8 counts and 5 numbers per (train, channel).
- Measured on the simulator (1 Hz, readings to 3 decimals): a noisy channel (p0 = q = 0.002, a
  bearing) alarms after about 5 repeats of its reading, a coarser one (0.03, the reservoir) after
  about 7, never more than 9; one that holds its value (q = 0.99) practically never.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RepeatRates", "stuck_bar"]

_PRIOR_WEIGHT = 100.0
"""Pseudo-frames behind q's prior (centred on p0), at most: no more than the frames p0 is known
from, so a channel with little history is not assumed to repeat independently."""


def stuck_bar(alarms_per_day: float, readings_per_day: float) -> float:
    """The log-probability below which a run is a stuck sensor (`alarms_per_day` per channel)."""
    return math.log(alarms_per_day / readings_per_day)


@dataclass(slots=True)
class RepeatRates:
    """One channel's record of exact repeats and its current run of identical readings."""

    counts: list[float] = field(default_factory=lambda: [0.0] * 8)
    """[frames, repeats] for (state, previous reading repeated): index 4*state + 2*repeated."""
    last: float = math.nan
    run: int = 0
    """Identical readings after the first of the run."""
    start: int = 0
    """The operating state the run started in (0 standing, 1 moving)."""
    steps: list[int] = field(default_factory=lambda: [0, 0])
    """The run's readings after its first repeat, per state."""

    def observe(self, value: float, state: int, keep: float) -> bool:
        """Count one reading in `state` (0 standing, 1 moving); whether it repeats the last.
        `keep`: the forgetting factor per transition (1 - 1/horizon)."""
        same = value == self.last
        self.last = value
        c = self.counts
        i = 4 * state + (2 if self.run else 0)
        c[i] = c[i] * keep + 1.0
        c[i + 1] = c[i + 1] * keep + (1.0 if same else 0.0)
        if not same:
            self.run = 0
        elif self.run:
            self.run += 1
            self.steps[state] += 1
        else:
            self.run, self.start, self.steps = 1, state, [0, 0]
        return same

    @property
    def seen(self) -> bool:
        """Has it counted a reading?"""
        return self.counts[0] > 0.0 or self.counts[4] > 0.0

    def log_chance(self) -> float:
        """The log-probability of the current run under the rates learnt (0.0: no run)."""
        if not self.run:
            return 0.0
        c = self.counts
        total = math.log(_p0(c, self.start))
        for state, k in enumerate(self.steps):
            if k:
                n, r = c[4 * state + 2], c[4 * state + 3]
                w = min(_PRIOR_WEIGHT, c[4 * state])
                q = (r + w * _p0(c, state)) / (n + w) if n + w > 0.0 else 0.5
                total += k * math.log(q)
        return total

    def dump(self) -> list[float]:
        return [*self.counts, self.last, self.run, self.start, *self.steps]

    @classmethod
    def load(cls, saved: list[float]) -> RepeatRates:
        if len(saved) != 13 or min(saved[:8]) < 0.0 or not 0 <= saved[10] <= 1:
            raise ValueError(f"repeat rates: 13 numbers in range expected, got {saved[:13]}")
        return cls(
            counts=[float(x) for x in saved[:8]],
            last=float(saved[8]),
            run=int(saved[9]),
            start=int(saved[10]),
            steps=[int(saved[11]), int(saved[12])],
        )


def _p0(c: list[float], state: int) -> float:
    return (c[4 * state + 1] + 1.0) / (c[4 * state] + 2.0)
