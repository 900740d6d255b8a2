"""Slow drifts, caught while they are small: each channel against what its twins on the same train
say it should read, the difference judged by a one-sided CUSUM.

A leaking brake cylinder holds less pressure than the other cylinder given the same command; a
door whose roller wears closes slower than the other doors at the same stop. Neither crosses a
hard limit until it is far gone, but against its twins the change is plain early on. Per channel:

- expected = the median of the other channels of its group at that sample, plus the channel's own
  normal offset from them (doors differ by a few tenths of a second), learned online from normal
  running (an exponentially weighted mean over ~`window` samples, after `learn` samples);
- residual = seen - expected, in units of its own normal spread (learned the same way);
- a one-sided CUSUM, S = max(0, S + min(z, clip) - k), raises an alert when S > h. With k = 0.5
  (it looks for a shift of one spread) and h = 15, a channel with no fault reaches h about once in
  2e7 samples (Siegmund's approximation of the in-control run length; ~0.4 % of a year of 1 Hz
  samples): that is the chosen false-alarm probability. A shift of d spreads is caught after about
  (h + 1.2) / (d - k) samples. Capping each sample at `clip` spreads keeps one odd sample (a
  passenger holding a door) from raising an alert on its own.
- The offset and spread keep learning from every ordinary sample (within `clip` spreads) while
  the CUSUMs of the whole group are below h / 2 (a drifting twin moves the others' reference), so a drift is not learned away as it grows (and learning from the
  samples of S = 0 alone would bias the offset: those are the ones on the healthy side).

What a check samples: brake cylinders while the brake is applied (all of the group above 1 bar);
bogie vibration on every frame (a flat wheel hammers one bogie: ~0.4 g more than the others at
speed; an RMS is never below zero and its spread is skewed, so its CUSUM looks for a shift of four
spreads, which a flat wheel makes at once, rather than one); saloon humidity against its own level
every 5 minutes from an hour after power-up (the HVAC dries the air; when it stops, humidity
climbs 15-30 %RH within minutes, long before the saloon temperature leaves the comfort band): a
shift of four spreads of at least 1 %RH, the level followed over two hours (24 samples), because
5-minute samples of air with a 5-minute time constant are still correlated and a healthy sensor
drifts by a few tenths of a %RH an hour (a shift of one spread, learnt over days, read that as a
dead HVAC: seed 103 of `make bench-faults`). It is the slow fallback; `fleet` compares the
humidity with the other trains' and catches a dead HVAC within minutes; door closing times once per closing (when the held value changes). Channels whose
residual follows slow dynamics (bearing and motor temperatures lag their load by many minutes)
are not judged this way: their samples are far from independent, and a CUSUM's run length means
nothing for them; the peer limits and the forest watch them. An alert says which
channel, what was expected and what was seen. State per (train, channel): seven numbers, carried
in the model snapshot (`memory`), so a worker taking over a shard does not relearn them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from railpulse_detector.memory import JudgeState, export_channels, restore_channels
from railpulse_detector.operating import PowerClock
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Attribution,
    Quality,
    Severity,
)

__all__ = ["Check", "DriftSettings", "Drifts"]

DRIFT_VERSION = "cusum-1"


@dataclass(frozen=True, slots=True)
class Check:
    """One group of twin channels and the side on which their failure shows."""

    channels: tuple[str, ...]
    direction: Literal["high", "low"]
    unit: str
    sample: Literal["active", "changed", "every"]
    """`active`: every frame in which all of the group read at least `active`; `changed`: a
    channel whenever its reading changes (an event value, held between events); `every`: one
    frame each `every_s` seconds (a slow signal: samples closer than its time constant are not
    independent, and the CUSUM's run length assumes they are)."""
    active: float = 0.0
    every_s: float = 0.0
    own: bool = False
    """Expected = the channel's own normal level, not its twins' (when the failure moves all of
    them together: one HVAC serves both saloons)."""
    settle_s: float = 0.0
    """Not sampled until this long after the train powered up (see `operating`)."""
    shift: float = 1.0
    """The shift, in spreads, the CUSUM looks for (its k is half of it)."""
    min_spread: float = 0.0
    """The spread is never taken below this (the sensor's resolution and noise floor)."""
    window: float = 0.0
    """Samples the offset and spread keep learning over (0: the settings' `window`); shorter
    for a channel judged against its own level, so that its sensor's slow drift is followed."""


def default_checks() -> tuple[Check, ...]:
    return (
        Check(
            channels=("brake_cyl_pressure_1", "brake_cyl_pressure_2"),
            direction="low",
            unit="bar",
            sample="active",
            active=1.0,
            min_spread=0.02,
        ),
        Check(
            channels=tuple(f"vibration_{i}" for i in range(1, 5)),
            direction="high",
            unit="g_rms",
            sample="active",
            shift=4.0,
            min_spread=0.01,
        ),
        Check(
            channels=("cabin_humidity_1", "cabin_humidity_2"),
            direction="high",
            unit="pct_rh",
            sample="every",
            every_s=300.0,
            own=True,
            settle_s=3600.0,
            # A dead HVAC moves humidity by 15-30 %RH; the saloon's own wander (~0.6 %RH, its
            # 5-min samples still correlated) and a healthy sensor's drift (~0.05 %RH/h) move it
            # by one or two: look for four spreads, and follow the level over two hours.
            shift=4.0,
            min_spread=1.0,
            window=24.0,
        ),
        Check(
            channels=tuple(f"door_close_time_{i}" for i in range(1, 5)),
            direction="high",
            unit="s",
            sample="changed",
            min_spread=0.05,
        ),
    )


@dataclass(frozen=True, slots=True)
class DriftSettings:
    k: float = 0.5
    h: float = 15.0
    clip: float = 4.0
    learn: int = 50
    """Samples that set a channel's offset and spread before it is judged."""
    window: float = 1000.0
    reassert_ms: int = 10_000
    checks: tuple[Check, ...] = field(default_factory=default_checks)


@dataclass(slots=True)
class _Channel:
    n: int = 0
    offset: float = 0.0
    var: float = 0.0
    cusum: float = 0.0
    last: float = math.nan
    sampled_ms: int = 0
    alerted_ms: int | None = None

    def dump(self) -> list[float]:
        alerted = math.nan if self.alerted_ms is None else float(self.alerted_ms)
        return [self.n, self.offset, self.var, self.cusum, self.last, self.sampled_ms, alerted]

    @classmethod
    def load(cls, saved: list[float]) -> _Channel:
        if len(saved) != 7:
            raise ValueError(f"drift state: 7 numbers expected, got {len(saved)}")
        n, offset, var, cusum, last, sampled, alerted = saved
        if not (n >= 0 and var >= 0 and cusum >= 0):
            raise ValueError(f"drift state out of range: {saved}")
        return cls(
            n=int(n),
            offset=offset,
            var=var,
            cusum=cusum,
            last=last,
            sampled_ms=int(sampled),
            alerted_ms=None if math.isnan(alerted) else int(alerted),
        )


class Drifts:
    """Per-train CUSUMs on each twin channel's residual."""

    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        self._state: dict[str, dict[str, _Channel]] = {}
        self._clock = PowerClock()

    def export(self) -> JudgeState:
        """Every train's learnt offsets, spreads and CUSUMs, and its operating state."""
        return export_channels(self._state, self._clock.trains)

    def restore(self, saved: JudgeState) -> None:
        self._state, self._clock.trains = restore_channels(saved, _Channel.load)

    def check(self, frame: AcceptedFrame) -> list[Anomaly]:
        if frame.backfill:
            return []  # live order only: the limits judge backfilled frames
        channels = self._state.setdefault(frame.train, {})
        operating, _ = self._clock.update(frame.train, frame.ts_ms, frame.speed_kmh)
        found: list[Anomaly] = []
        for check in self.settings.checks:
            if check.settle_s and operating.seconds_powered(frame.ts_ms) < check.settle_s:
                continue
            values = {}
            for name in check.channels:
                reading = frame.readings.get(name)
                if reading is not None and reading.quality is Quality.GOOD:
                    values[name] = reading.value
            if len(values) < (1 if check.own else 2):
                continue
            if check.sample == "active" and min(values.values()) < check.active:
                continue
            # While one twin drifts, the others' reference (the median of the rest) moves with
            # it: none of the group learns until it is back.
            calm = all(
                channels[c].cusum <= self.settings.h / 2 for c in check.channels if c in channels
            )
            for name, value in values.items():
                state = channels.get(name)
                if state is None:
                    state = channels[name] = _Channel()
                if check.sample == "changed":
                    changed = value != state.last
                    state.last = value
                    if not changed:
                        continue
                elif check.sample == "every":
                    if frame.ts_ms - state.sampled_ms < check.every_s * 1000:
                        continue
                    state.sampled_ms = frame.ts_ms
                peers = 0.0 if check.own else _median([v for c, v in values.items() if c != name])
                anomaly = self._judge(frame, check, name, state, value, peers, calm)
                if anomaly is not None:
                    found.append(anomaly)
        return found

    def _judge(
        self,
        frame: AcceptedFrame,
        check: Check,
        name: str,
        state: _Channel,
        value: float,
        peers: float,
        calm: bool,
    ) -> Anomaly | None:
        s = self.settings
        residual = value - peers
        if state.n < s.learn:
            state.n += 1
            delta = residual - state.offset
            state.offset += delta / state.n
            state.var += (delta * (residual - state.offset) - state.var) / state.n
            return None
        spread = max(math.sqrt(state.var), check.min_spread)
        z = (residual - state.offset) / spread
        if check.direction == "low":
            z = -z
        state.cusum = max(0.0, state.cusum + min(z, s.clip) - s.k * check.shift)
        if calm and state.cusum <= s.h / 2 and abs(z) <= s.clip:
            state.n += 1
            a = 1.0 / min(state.n, check.window or s.window)
            delta = residual - state.offset
            state.offset += a * delta
            state.var = (1.0 - a) * (state.var + a * delta * delta)
        if state.cusum <= s.h:
            state.alerted_ms = None
            return None
        if state.alerted_ms is not None and frame.ts_ms - state.alerted_ms < s.reassert_ms:
            return None
        state.alerted_ms = frame.ts_ms
        expected = peers + state.offset
        basis = (
            "its own normal level on this train"
            if check.own
            else f"its {len(check.channels) - 1} twin(s) on this train"
        )
        key = f"drift:{name}"
        return Anomaly(
            anomaly_id=f"{frame.train}:{frame.seq}:{key}",
            train=frame.train,
            ts_ms=frame.ts_ms,
            frame_seq=frame.seq,
            category=AnomalyKind.MODEL,
            severity=Severity.WARNING,
            score=state.cusum,
            threshold=s.h,
            alert_key=key,
            channels=[
                Attribution(
                    channel=name,
                    contribution=1.0,
                    direction=check.direction,
                    value=value,
                    expected=expected,
                )
            ],
            model_version=DRIFT_VERSION,
            message=f"{name} {value:g} {check.unit}, expected {expected:.3g} {check.unit} from "
            f"{basis}: drifting {check.direction} "
            f"(CUSUM {state.cusum:.1f} > {s.h:g})",
            received_ms=frame.received_ms,
            ingested_ms=frame.ingested_ms,
        )


def _median(values: list[float]) -> float:
    values.sort()
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0
