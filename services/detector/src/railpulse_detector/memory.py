"""What the judges beside the forests have learnt, carried in the model snapshot.

The drift checks' offsets, spreads and CUSUMs and the stuck-sensor check's repeat rates are learnt
over hours of a train's running; a worker taking over a shard would otherwise relearn them (and
judge nothing meanwhile). Each such judge exports a `JudgeState`: a few numbers per (train,
channel) and per train, bounded by the fleet's channel count, and restores from it. The model
bank (`ModelBank.remember`) writes them into its snapshot beside the forests.
"""

from __future__ import annotations

import math
from typing import Protocol

import msgspec

from railpulse_detector.operating import OperatingState

__all__ = ["JudgeState", "Remembers", "dump_operating", "load_operating"]


class JudgeState(msgspec.Struct):
    channels: dict[str, dict[str, list[float]]] = msgspec.field(default_factory=dict)
    """train -> channel -> the judge's numbers for it."""
    trains: dict[str, list[float]] = msgspec.field(default_factory=dict)
    """train -> the judge's numbers for the train as a whole (its operating state)."""


class Remembers(Protocol):
    def export(self) -> JudgeState: ...

    def restore(self, saved: JudgeState) -> None:
        """Take the saved state (raises ValueError on numbers it cannot use)."""
        ...


class Exported:
    """A judge's state as it was when exported (what a detached snapshot copy writes)."""

    def __init__(self, state: JudgeState) -> None:
        self._state = state

    def export(self) -> JudgeState:
        return self._state

    def restore(self, saved: JudgeState) -> None:
        raise TypeError("an exported state is read-only")


def dump_operating(state: OperatingState) -> list[float]:
    return [
        _num(state.last_ms),
        float(state.powered_ms),
        _num(state.moved_ms),
        float(state.midway),
    ]


def load_operating(saved: list[float]) -> OperatingState:
    if len(saved) != 4:
        raise ValueError(f"operating state: 4 numbers expected, got {len(saved)}")
    return OperatingState(
        last_ms=_int(saved[0]),
        powered_ms=int(saved[1]),
        moved_ms=_int(saved[2]),
        midway=bool(saved[3]),
    )


def _num(value: int | None) -> float:
    return math.nan if value is None else float(value)


def _int(value: float) -> int | None:
    return None if math.isnan(value) else int(value)
