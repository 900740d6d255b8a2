"""One-reading spikes: a reading that leaps away from both of its neighbours, judged by how much
this channel, on this train, moves from one reading to the next when it is healthy.

A worn pantograph arcs as it regains contact: the line voltage it reports leaps by a few kV for
one reading, often without leaving its operating range, and a failing sensor or connector throws
single wild readings the same way. A limit does not see a leap inside the range, and a model of
how a channel behaves over minutes takes one reading for noise. What shows it is its shape: a
reading far from the one before it and from the one after it, on the same side. So each (train,
channel) keeps its last few readings by frame number (`seq`, so that frames backfilled after a
tunnel fall into place) and judges every three consecutive frames once, when the last of them
arrives:

- its wobble `w`: the running mean of |middle - mean of its two neighbours| over the threes that
  were not spikes, forgotten over `horizon` of them, each clipped at `_CLIP` w (a wild reading
  does not teach it much);
- a spike: the middle reading departs from both neighbours on the same side, each by more than
  max(`wobbles` x w, `span_share` x the channel's operating span). The share of the span keeps a
  quiet or coarse channel (a wobble of 0: a speed at a standstill) from calling one step of its
  resolution a spike; a step to a new level is no spike, as the reading after it stays there.

A spike is known one reading late, when the reading after it arrives. Defaults are round values:
ten wobbles and a fifth of the operating span. A tenth flagged one healthy reading in 60 trains x
24 h of the tuning seed 7: the line voltage as the traction current reverses (braking after
motoring, 2,262 A to 441 to -2,374 in three seconds, so the line's drop under load, which the
simulator takes as proportional to |current|, eased for one reading by 1.2 kV, a tenth of the span);
a fiftieth flagged traction currents' healthy changes hundreds of times a day. A worn
pantograph's arc at half its default size (3.2-4.8 kV) and a spike of a quarter of the span are
still found at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from railpulse_detector.memory import JudgeState, export_channels, restore_channels

__all__ = ["Spike", "SpikeSettings", "Spikes"]

_KEEP = 5
"""Readings kept per channel: a three and room for a backfilled frame to find its neighbours."""
_CLIP = 5.0


@dataclass(frozen=True, slots=True)
class SpikeSettings:
    wobbles: float = 10.0
    span_share: float = 0.2
    horizon: float = 3600.0
    """Threes over which the wobble is learnt (an hour at 1 Hz)."""
    warmup: float = 60.0
    """Threes seen before the wobble is trusted (until then nothing is judged)."""


@dataclass(frozen=True, slots=True)
class Spike:
    seq: int
    """The frame of the leaping reading."""
    value: float
    before: float
    after: float
    wobble: float


@dataclass(slots=True)
class _Channel:
    recent: dict[int, float] = field(default_factory=dict)
    wobble: float = 0.0
    weight: float = 0.0

    def dump(self) -> list[float]:
        return [self.wobble, self.weight]

    @classmethod
    def load(cls, numbers: list[float]) -> _Channel:
        if len(numbers) != 2 or not all(math.isfinite(x) and x >= 0.0 for x in numbers):
            raise ValueError(f"spikes: two numbers >= 0 expected, got {numbers[:2]}")
        return cls(wobble=float(numbers[0]), weight=float(numbers[1]))


class Spikes:
    """The spike judge's state for every (train, channel) it has seen."""

    def __init__(self, settings: SpikeSettings | None = None) -> None:
        self.settings = settings or SpikeSettings()
        self._keep = 1.0 - 1.0 / self.settings.horizon
        self._channels: dict[str, dict[str, _Channel]] = {}

    def observe(self, train: str, name: str, seq: int, value: float, span: float) -> Spike | None:
        """Take one valid reading of frame `seq`; the spike it completes the view of, if any.
        `span`: the channel's operating span."""
        channels = self._channels.get(train)
        if channels is None:
            channels = self._channels[train] = {}
        state = channels.get(name)
        if state is None:
            state = channels[name] = _Channel()
        recent = state.recent
        if seq in recent:
            return None  # a frame replayed
        if recent:
            oldest = min(recent)
            if seq < oldest - _KEEP:
                recent.clear()  # a counter that started again (a frame from long ago: no matter)
            elif len(recent) == _KEEP:
                if seq < oldest:
                    return None  # older than every reading kept: too late to judge
                del recent[oldest]
        recent[seq] = value
        found = None
        # Each three with this reading, complete only now; in live order the next reading is not
        # here yet, and the two threes that need it are not complete.
        mids = (seq - 1, seq, seq + 1) if seq + 1 in recent else (seq - 1,)
        for mid in mids:
            a, m, b = recent.get(mid - 1), recent.get(mid), recent.get(mid + 1)
            if a is None or m is None or b is None:
                continue
            spike = self._judge(state, m - a, m - b, span)
            if spike:
                found = Spike(mid, m, a, b, state.wobble)
        return found

    def _judge(self, state: _Channel, up: float, down: float, span: float) -> bool:
        s = self.settings
        trusted = state.weight >= s.warmup
        if trusted and up * down > 0.0:
            bar = max(s.wobbles * state.wobble, s.span_share * span)
            if min(abs(up), abs(down)) > bar:
                return True
        off = abs(up + down) / 2.0  # |middle - mean of its neighbours|
        if trusted:
            off = min(off, _CLIP * state.wobble)
        state.weight = state.weight * self._keep + 1.0
        state.wobble += (off - state.wobble) / state.weight
        return False

    def export(self) -> JudgeState:
        """The wobbles learnt (the readings kept are of the moment)."""
        learnt = {
            train: {n: c for n, c in channels.items() if c.weight > 0.0}
            for train, channels in self._channels.items()
        }
        return export_channels(learnt, {})

    def restore(self, saved: JudgeState) -> None:
        learnt, _ = restore_channels(saved, _Channel.load)
        for train, judged in learnt.items():
            self._channels.setdefault(train, {}).update(judged)
