"""Regulated channels against the fleet: a saloon's humidity beside what the other trains' saloons
read at the same time.

An HVAC holds a saloon's humidity at one level whatever the train does, so every settled train in
service should read about the same. When an HVAC dies the saloon air drifts towards the outside's
and the passengers' moisture within minutes (the air's time constant is ~5 min): long before the
reading leaves the catalogue's operating range, and long before the train's own history (see
`drift`) has been learnt. The other trains need no learning: they are the reference now.

Channels marked `regulated` in the catalogue are judged; the reference for one channel of a train
is the same template's channels (both saloons) on the other trains of the same shard (the trains
this handler sees; the local stack's 20 trains are 14 and 6 on its two shards):

- a train takes part (as reference, and to be judged) once it is settled: met in service
  (`OperatingState.midway`) or powered up for the limits' `settle_s` (the HVAC's pre-conditioning
  after a depot night, `rules.RuleSettings.settle_s`); its latest live reading counts for
  `fresh_s` (a train in a tunnel or powered down drops out of the reference);
- expected = the median of the other trains' readings; spread = 1.4826 x their median absolute
  deviation (a Gaussian's sigma, robust to the one train that is failing), never below the
  catalogue's `fleet_spread` (the sensors' accuracy: healthy sensors differ by that, and drift);
- nothing is judged with fewer than `min_trains` other trains (a median and a spread of fewer
  say little; a shard with one train leaves its saloons to the limits and the own-level check);
- a reading further than `z` spreads from expected, on either side, for `persist_s` in a row is an
  alert (`fleet:<channel>`): a door open at a stop, a moment's steam, does not last a minute.

`z` = 5: a Gaussian reading passes it once in 1.7 million; with the floor of 1 %RH that is 5 %RH
from the fleet's median, which a healthy saloon's noise (~0.6 %RH) and a day of its sensor's
drift (~1 %RH at one sigma) do not reach, and a dead HVAC does within about two minutes. The
message says what was seen, what was expected and from how many trains:

    cabin_humidity_1 54.1 pct_rh, expected 45.2 pct_rh from 13 other trains (spread 1 pct_rh,
    limit +-5 pct_rh): high for 60 s

State per (train, channel): four numbers, carried in the model snapshot (`memory`) with each
train's operating state, so a new owner judges at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from railpulse_detector.memory import (
    JudgeState,
    export_channels,
    int_or_none,
    nan_or_float,
    restore_channels,
)
from railpulse_detector.operating import PowerClock
from railpulse_detector.rules import RuleSettings
from railpulse_shared.catalogue import Catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Attribution,
    Quality,
    Severity,
)

__all__ = ["Fleet", "FleetSettings"]

FLEET_VERSION = "fleet-1"
_MAD_TO_SIGMA = 1.4826
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FleetSettings:
    z: float = 5.0
    """How many spreads from the fleet's median a reading may be."""
    persist_s: float = 60.0
    """How long it must stay there to be an alert (a stop's open doors do not)."""
    min_trains: int = 5
    """Other settled trains needed before a reading is judged."""
    fresh_s: float = 300.0
    """A train's latest reading counts this long (the air's time constant)."""
    reassert_ms: int = 10_000


@dataclass(slots=True)
class _Reading:
    value: float = math.nan
    ts_ms: int = 0
    """When it was read (0: never)."""
    over_ms: int | None = None
    """Since when it has been past the bar (None: it is not)."""
    alerted_ms: int | None = None

    def dump(self) -> list[float]:
        return [
            self.value,
            float(self.ts_ms),
            nan_or_float(self.over_ms),
            nan_or_float(self.alerted_ms),
        ]

    @classmethod
    def load(cls, saved: list[float]) -> _Reading:
        if len(saved) != 4:
            raise ValueError(f"fleet state: 4 numbers expected, got {len(saved)}")
        value, ts, over, alerted = saved
        if not ts >= 0:
            raise ValueError(f"fleet state out of range: {saved}")
        return cls(
            value=value, ts_ms=int(ts), over_ms=int_or_none(over), alerted_ms=int_or_none(alerted)
        )


_Reference = tuple[float, float, int]
"""The others' median, their spread (before the floor) and how many trains they are."""


def _leave_one_out(owners: list[str], values: list[float]) -> dict[str | None, _Reference]:
    """For each train among `owners` (and for none: key None), the median and the spread of the
    other trains' `values`, and how many other trains there are.

    All trains at once, one row of the sorted readings per train with its own set to +inf
    (a sort per row keeps the others first): two row sorts a group a second, instead of two
    medians per reading. The numbers are `np.median`'s over each train's others. The rows make
    it quadratic in a shard's trains (100 trains with two saloons: 100 x 200 readings)."""
    trains = list(dict.fromkeys(owners))
    if not trains:
        return {None: (math.nan, math.nan, 0)}
    index = {train: i for i, train in enumerate(trains)}
    whose = np.array([index[o] for o in owners])
    kept = whose[None, :] != np.arange(len(trains) + 1)[:, None]  # the last row leaves nobody out
    others = np.where(kept, np.array(values, dtype=np.float64), np.inf)
    others.sort(axis=1)
    counts = np.count_nonzero(kept, axis=1)
    medians = _middle(others, counts)
    deviations = np.abs(others - medians[:, None])
    deviations.sort(axis=1)
    spreads = _MAD_TO_SIGMA * _middle(deviations, counts)
    found: dict[str | None, _Reference] = {
        train: (float(medians[i]), float(spreads[i]), len(trains) - 1)
        for i, train in enumerate(trains)
    }
    found[None] = (float(medians[-1]), float(spreads[-1]), len(trains))
    return found


def _middle(rows: F64, counts: npt.NDArray[np.intp]) -> F64:
    """The median of the first `counts[i]` values of each sorted row `i` (NaN for none): the
    mean of the two middle ones, as `np.median` takes it."""
    picks, some = np.arange(len(rows)), np.maximum(counts, 1)
    low, high = rows[picks, (some - 1) // 2], rows[picks, some // 2]
    return np.where(counts > 0, (low + high) / 2, np.nan)


class Fleet:
    """Each regulated channel of a train against the same channels of the other trains."""

    def __init__(
        self,
        catalogue: Catalogue,
        settings: FleetSettings | None = None,
        rules: RuleSettings | None = None,
    ) -> None:
        self.settings = settings or FleetSettings()
        rules = rules or RuleSettings()
        self._group: dict[str, str] = {}
        """Regulated channel -> its template (the channels that are its reference)."""
        self._floor: dict[str, float] = {}
        self._unit: dict[str, str] = {}
        self._settle_ms: dict[str, float] = {}
        for name, channel in catalogue.channels.items():
            if not channel.regulated:
                continue
            group = channel.peers or name
            self._group[name] = group
            self._floor[name] = channel.fleet_spread or 0.0
            self._unit[name] = channel.unit
            settle = rules.settle_s.get(name, rules.settle_s.get(group, 0.0))
            self._settle_ms[name] = 1000.0 * settle
        self._state: dict[str, dict[str, _Reading]] = {}
        """train -> regulated channel -> its latest reading and alert state."""
        self._clock = PowerClock(rules.power_gap_ms, rules.moving_kmh)
        self._gathered: dict[str, tuple[int, dict[str | None, _Reference]]] = {}
        """group -> (the second it was gathered in, its references): see `_references`."""

    def export(self) -> JudgeState:
        return export_channels(self._state, self._clock.trains)

    def restore(self, saved: JudgeState) -> None:
        self._state, self._clock.trains = restore_channels(saved, _Reading.load)
        self._gathered.clear()

    def _settled(self, train: str, name: str, ts_ms: int) -> bool:
        operating = self._clock.trains.get(train)
        if operating is None:
            return False
        return operating.midway or ts_ms - operating.powered_ms >= self._settle_ms[name]

    def check(self, frame: AcceptedFrame) -> list[Anomaly]:
        if frame.backfill or not self._group:
            return []  # live order only: a backfilled reading is not what the saloon holds now
        self._clock.update(frame.train, frame.ts_ms, frame.speed_kmh)
        mine = self._state.setdefault(frame.train, {})
        found: list[Anomaly] = []
        for name in self._group:
            reading = frame.readings.get(name)
            if reading is None or reading.quality is not Quality.GOOD:
                continue
            state = mine.get(name)
            if state is None:
                state = mine[name] = _Reading()
            if frame.ts_ms < state.ts_ms:
                continue
            state.value, state.ts_ms = reading.value, frame.ts_ms
            anomaly = self._judge(frame, name, state)
            if anomaly is not None:
                found.append(anomaly)
        return found

    def reference(self, train: str, name: str, ts_ms: int) -> tuple[float, float, int] | None:
        """(median, spread, trains) of the other settled trains' readings of `name`'s template
        at `ts_ms`, or None with fewer than `min_trains` of them."""
        references = self._references(self._group[name], name, ts_ms)
        median, spread, trains = references.get(train, references[None])
        if trains < self.settings.min_trains:
            return None
        return median, max(spread, self._floor[name]), trains

    def _references(self, group: str, name: str, ts_ms: int) -> dict[str | None, _Reference]:
        """Every settled train's fresh readings of `group`, each train's reference taken from
        the others' (see `_leave_one_out`), gathered once a second (trains' clocks differ by
        less: a frame of an earlier second takes them as they are)."""
        second = ts_ms // 1000
        cached = self._gathered.get(group)
        if cached is not None and cached[0] >= second:
            return cached[1]
        oldest = ts_ms - 1000.0 * self.settings.fresh_s
        owners: list[str] = []
        values: list[float] = []
        for train, channels in self._state.items():
            if not self._settled(train, name, ts_ms):
                continue
            for channel, r in channels.items():
                if self._group.get(channel) == group and r.ts_ms >= oldest:
                    owners.append(train)
                    values.append(r.value)
        references = _leave_one_out(owners, values)
        self._gathered[group] = (second, references)
        return references

    def _judge(self, frame: AcceptedFrame, name: str, state: _Reading) -> Anomaly | None:
        s = self.settings
        reference = (
            self.reference(frame.train, name, frame.ts_ms)
            if self._settled(frame.train, name, frame.ts_ms)
            else None
        )
        if reference is None:
            state.over_ms = state.alerted_ms = None
            return None
        expected, spread, trains = reference
        z = (state.value - expected) / spread
        if abs(z) <= s.z:
            state.over_ms = state.alerted_ms = None
            return None
        if state.over_ms is None:
            state.over_ms = frame.ts_ms
        lasted_s = (frame.ts_ms - state.over_ms) / 1000.0
        if lasted_s < s.persist_s:
            return None
        if state.alerted_ms is not None and frame.ts_ms - state.alerted_ms < s.reassert_ms:
            return None
        state.alerted_ms = frame.ts_ms
        direction: Literal["high", "low"] = "high" if z > 0 else "low"
        unit = self._unit[name]
        key = f"fleet:{name}"
        return Anomaly(
            anomaly_id=f"{frame.train}:{frame.seq}:{key}",
            train=frame.train,
            ts_ms=frame.ts_ms,
            frame_seq=frame.seq,
            category=AnomalyKind.MODEL,
            severity=Severity.WARNING,
            score=abs(z),
            threshold=s.z,
            alert_key=key,
            channels=[
                Attribution(
                    channel=name,
                    contribution=1.0,
                    direction=direction,
                    value=state.value,
                    expected=expected,
                )
            ],
            model_version=FLEET_VERSION,
            message=f"{name} {state.value:g} {unit}, expected {expected:.3g} {unit} from "
            f"{trains} other trains (spread {spread:.2g} {unit}, limit ±{s.z * spread:.2g} "
            f"{unit}): {direction} for {lasted_s:.0f} s",
            received_ms=frame.received_ms,
            ingested_ms=frame.ingested_ms,
        )
