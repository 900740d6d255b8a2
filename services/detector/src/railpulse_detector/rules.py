"""Hard limits and sensor faults: judged on every frame, with no warm-up.

- A reading past the catalogue's operating range is a `limit` anomaly (warning), past the
  critical range a critical one. An extreme reading is never discarded as noise: it may be a fire.
- A reading that strays from the median of its peers (the same template on the same train, at the
  same instant) by more than the catalogue's `peer_spread` is a `limit` anomaly too (`peers:`): a
  degrading bearing runs hotter than the other seven axle boxes long before it reaches an absolute
  limit, and the slow drift is exactly what a forest learns as normal.
- A reading that leaps away from both of its neighbours and back (far beyond this channel's usual
  change from one reading to the next, see `spike`) is a `limit` anomaly too (`spike:`): a
  pantograph's arc inside the operating range, a connector throwing one wild reading. It is known
  one reading late, when the reading after it arrives.
- Some operating ranges hold only once the system that keeps a channel there has run: after a
  train powers up (its first frame after `power_gap_ms` without one: a depot night, not a tunnel)
  the main reservoir is charged by the compressor and the saloons are pre-conditioned by the HVAC.
  Such a channel (`settle_s`) is not judged by its operating and critical limits until it has
  first reached its operating range (by a tenth of its width) or `settle_s` has passed since power-up, whichever is first:
  a reservoir at 2 bar while the compressor charges it is the train being prepared, not a fault.
  A reservoir that never charges is still one `settle_s` later.
- A physically impossible reading (quality `invalid`), a stuck sensor (a run of identical
  readings too long for what this channel does when healthy, see `stuck`) and a dropout (a
  channel the train was sending missing for `dropout_frames` frames) are `sensor_fault` anomalies.
  A channel the catalogue marks `may_hold` (a door timer, a brake cylinder) is never stuck, and a
  device that reports no speed has no operating state to learn its channels' repeats in.

A condition that persists is re-asserted every `reassert_ms` (not on every frame), so the
notifier keeps its alarm open without one message per second; a rise in severity is reported at
once. Each rule keeps a few numbers per (train, channel): memory is bounded by the fleet's
channel count.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from railpulse_detector.memory import JudgeState
from railpulse_detector.operating import POWER_GAP_MS, PowerClock
from railpulse_detector.spike import Spike, Spikes, SpikeSettings
from railpulse_detector.stuck import RepeatRates, stuck_bar
from railpulse_shared.catalogue import Band, Catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Attribution,
    Quality,
    Severity,
)

__all__ = ["RuleSettings", "Rules"]

RULES_VERSION = "rules-1"
_SETTLED_MARGIN = 0.1
"""A settling channel has settled once it reads this share of its operating range's width inside
the range: a saloon warming through 16 degC crosses it back and forth in the sensor's noise."""
_SEVERITY = {Band.WARNING: Severity.WARNING, Band.CRITICAL: Severity.CRITICAL}


@dataclass(frozen=True, slots=True)
class RuleSettings:
    stuck_alarms_per_day: float = 0.01
    """False stuck-sensor alarms a healthy train may raise per day, all its channels together
    (a tenth of the whole detector's budget of 0.1)."""
    stuck_horizon: float = 86_400.0
    """Frames over which a channel's repeat rates are learnt (forgotten exponentially)."""
    readings_per_day: float = 86_400.0
    """Frames a channel sends in a train-day (1 Hz): the runs that could start."""
    dropout_frames: int = 5
    reassert_ms: int = 10_000
    moving_kmh: float = 1.0
    power_gap_ms: int = POWER_GAP_MS
    """A gap between a train's frames this long means it was powered down (see `operating`)."""
    settle_s: Mapping[str, float] = field(
        default_factory=lambda: {
            "main_reservoir_pressure": 900.0,
            "cabin_temp": 3600.0,
            "cabin_humidity": 3600.0,
        }
    )
    """Channel (or template) → the longest the system that holds it in range may take after
    power-up: the compressor charges an empty reservoir in about five minutes, the HVAC brings a
    saloon from a frosty night to 16 degC in about ten (round values, with margin)."""
    spikes: SpikeSettings = field(default_factory=SpikeSettings)


@dataclass(slots=True)
class _ChannelState:
    repeats: RepeatRates = field(default_factory=RepeatRates)
    missing: int = 0
    seen: bool = False
    settled: bool = False
    """Reached its operating range since the train powered up (see `settle_s`)."""


@dataclass(slots=True)
class _TrainState:
    channels: dict[str, _ChannelState] = field(default_factory=dict)
    open: dict[str, tuple[Severity, int]] = field(default_factory=dict)
    """alert_key → (severity, sensor time last reported), for conditions still present."""
    powered_ms: int = 0
    """When the train powered up (its first frame after a gap of `power_gap_ms`)."""


class Rules:
    """Stateful per-train rules over accepted frames."""

    def __init__(self, catalogue: Catalogue, settings: RuleSettings | None = None) -> None:
        self.catalogue = catalogue
        self.settings = settings or RuleSettings()
        self._trains: dict[str, _TrainState] = {}
        self._clock = PowerClock(self.settings.power_gap_ms, self.settings.moving_kmh)
        s = self.settings
        judged = sum(1 for c in catalogue.channels.values() if not c.may_hold) or 1
        self._stuck_bar = stuck_bar(s.stuck_alarms_per_day / judged, s.readings_per_day)
        self._keep = 1.0 - 1.0 / s.stuck_horizon
        self.spikes = Spikes(s.spikes)
        """The spike judge: its own state, saved with the models as its own judge."""

    def export(self) -> JudgeState:
        """What the stuck-sensor check learnt (the rest of the rules' state is of the moment)."""
        return JudgeState(
            channels={
                train: {n: c.repeats.dump() for n, c in state.channels.items() if c.repeats.seen}
                for train, state in self._trains.items()
            }
        )

    def restore(self, saved: JudgeState) -> None:
        learnt = {
            train: {name: RepeatRates.load(numbers) for name, numbers in channels.items()}
            for train, channels in saved.channels.items()
        }
        for train, channels in learnt.items():
            state = self._trains.setdefault(train, _TrainState())
            for name, repeats in channels.items():
                state.channels.setdefault(name, _ChannelState()).repeats = repeats

    def check(self, frame: AcceptedFrame) -> list[Anomaly]:
        state = self._trains.get(frame.train)
        if state is None:  # (not setdefault: that would build a state for every frame)
            state = self._trains[frame.train] = _TrainState()
        speed = frame.speed_kmh if frame.speed_kmh is not None else _value(frame, "speed")
        # The operating state a channel's repeats are learnt in (None: the device has none).
        mode = None if speed is None else int(speed > self.settings.moving_kmh)
        operating, powered_up = self._clock.update(frame.train, frame.ts_ms, speed)
        if powered_up:
            for settling in state.channels.values():
                settling.settled = False
        state.powered_ms = operating.powered_ms
        found: dict[str, tuple[AnomalyKind, Severity, Attribution, str]] = {}
        for name, reading in frame.readings.items():
            channel_state = state.channels.get(name)
            if channel_state is None:
                channel_state = state.channels[name] = _ChannelState()
            channel_state.seen, channel_state.missing = True, 0
            value = reading.value
            if reading.quality is Quality.INVALID:
                found[f"sensor_fault:{name}"] = (
                    AnomalyKind.SENSOR_FAULT,
                    Severity.WARNING,
                    Attribution(channel=name, contribution=1.0, value=value),
                    f"{name} reads {value:g}, which is physically impossible: sensor fault",
                )
                continue
            channel = self.catalogue.channels.get(name)
            if reading.quality is Quality.UNCATALOGUED or channel is None:
                continue  # no limits to judge by (a name ingest did not know, whatever its flag)
            breach = self.catalogue.breach(name, value)
            if breach is None:
                low, high = channel.operating
                margin = _SETTLED_MARGIN * (high - low)
                if low + margin <= value <= high - margin:
                    channel_state.settled = True
            elif self._settling(state, channel_state, name, channel.peers, frame.ts_ms):
                breach = None
            if breach is not None and breach.band in _SEVERITY:
                unit = channel.unit
                side = "above" if breach.direction == "high" else "below"
                level = "critical" if breach.band is Band.CRITICAL else "operating"
                found[f"limit:{name}"] = (
                    AnomalyKind.LIMIT,
                    _SEVERITY[breach.band],
                    Attribution(
                        channel=name,
                        contribution=1.0,
                        direction=breach.direction,
                        value=value,
                        expected=breach.limit,
                    ),
                    f"{name} {value:g} {unit} {side} the {level} limit {breach.limit:g}",
                )
            if channel.may_hold:
                continue
            low, high = channel.operating
            spike = self.spikes.observe(frame.train, name, frame.seq, value, high - low)
            if spike is not None:
                found[f"spike:{name}"] = _spike_finding(name, channel.unit, spike)
            if mode is None:
                continue
            repeats = channel_state.repeats
            if (
                repeats.observe(value, mode, self._keep)
                and (chance := repeats.log_chance()) < self._stuck_bar
            ):
                found[f"sensor_fault:{name}"] = (
                    AnomalyKind.SENSOR_FAULT,
                    Severity.WARNING,
                    Attribution(channel=name, contribution=1.0, value=value),
                    f"{name} stuck at {value:g} for {repeats.run + 1} readings (a healthy"
                    f" {name} on this train does that with a chance of 1 in"
                    f" {_odds(chance)})",
                )
        found |= self._peers(frame)
        for name, channel_state in state.channels.items():
            if name in frame.readings or not channel_state.seen:
                continue
            channel_state.missing += 1
            if channel_state.missing >= self.settings.dropout_frames:
                found[f"sensor_fault:{name}"] = (
                    AnomalyKind.SENSOR_FAULT,
                    Severity.WARNING,
                    Attribution(channel=name, contribution=1.0),
                    f"{name} missing from the last {channel_state.missing} frames: dropout",
                )
        return self._report(frame, state, found)

    def _settling(
        self,
        state: _TrainState,
        channel_state: _ChannelState,
        name: str,
        template: str | None,
        ts_ms: int,
    ) -> bool:
        """Is `name`, out of its operating range now, still settling after power-up?"""
        if channel_state.settled:
            return False
        settle_s = self.settings.settle_s.get(name, self.settings.settle_s.get(template or ""))
        if settle_s is None or ts_ms - state.powered_ms >= settle_s * 1000:
            channel_state.settled = True
            return False
        return True

    def _peers(
        self, frame: AcceptedFrame
    ) -> dict[str, tuple[AnomalyKind, Severity, Attribution, str]]:
        found = {}
        for (warning, critical), channels in self.catalogue.peer_groups.values():
            good = [
                (c, r.value)
                for c in channels
                if (r := frame.readings.get(c.name)) is not None and r.quality is Quality.GOOD
            ]
            if len(good) < 3:  # a median of two says nothing about which one strays
                continue
            median = statistics.median(v for _, v in good)
            for channel, value in good:
                spread = value - median
                if abs(spread) <= warning:
                    continue
                band = Band.CRITICAL if abs(spread) > critical else Band.WARNING
                direction: Literal["high", "low"] = "high" if spread > 0 else "low"
                found[f"peers:{channel.name}"] = (
                    AnomalyKind.LIMIT,
                    _SEVERITY[band],
                    Attribution(
                        channel=channel.name,
                        contribution=1.0,
                        direction=direction,
                        value=value,
                        expected=median,
                    ),
                    f"{channel.name} {value:g} {channel.unit} is {spread:+.1f} {channel.unit} from"
                    f" the median of its {len(good)} peers (limit ±"
                    f"{critical if band is Band.CRITICAL else warning:g})",
                )
        return found

    def _report(
        self,
        frame: AcceptedFrame,
        state: _TrainState,
        found: dict[str, tuple[AnomalyKind, Severity, Attribution, str]],
    ) -> list[Anomaly]:
        anomalies = []
        for key, (kind, severity, attribution, message) in found.items():
            previous = state.open.get(key)
            due = previous is None or (
                severity > previous[0] or frame.ts_ms - previous[1] >= self.settings.reassert_ms
            )
            if not due:
                continue
            state.open[key] = (severity, frame.ts_ms)
            anomalies.append(
                Anomaly(
                    anomaly_id=f"{frame.train}:{frame.seq}:{key}",
                    train=frame.train,
                    ts_ms=frame.ts_ms,
                    frame_seq=frame.seq,
                    category=kind,
                    severity=severity,
                    score=1.0,
                    threshold=1.0,
                    alert_key=key,
                    channels=[attribution],
                    model_version=RULES_VERSION,
                    message=message,
                    received_ms=frame.received_ms,
                    ingested_ms=frame.ingested_ms,
                )
            )
        # A condition that is gone may be raised afresh next time.
        for key in [k for k in state.open if k not in found]:
            del state.open[key]
        return anomalies


def _spike_finding(
    name: str, unit: str, spike: Spike
) -> tuple[AnomalyKind, Severity, Attribution, str]:
    around = (spike.before + spike.after) / 2.0
    return (
        AnomalyKind.LIMIT,
        Severity.WARNING,
        Attribution(
            channel=name,
            contribution=1.0,
            direction="high" if spike.value > around else "low",
            value=spike.value,
            expected=around,
        ),
        f"{name} leapt to {spike.value:g} {unit} for one reading ({spike.before:g} before it,"
        f" {spike.after:g} after; it usually moves {spike.wobble:.2g} {unit} from one reading to"
        f" the next): an arc, a loose connection or a failing sensor",
    )


def _odds(log_chance: float) -> str:
    return f"{math.exp(-log_chance):.2g}" if log_chance > -700 else "1e300+"


def _value(frame: AcceptedFrame, channel: str) -> float | None:
    reading = frame.readings.get(channel)
    return reading.value if reading is not None else None
