"""What the judges beside the forests have learnt, carried in the model snapshot.

The drift checks' offsets, spreads and CUSUMs and the stuck-sensor check's repeat rates are learnt
over hours of a train's running; a worker taking over a shard would otherwise relearn them (and
judge nothing meanwhile). Each such judge exports a `JudgeState`: a few numbers per (train,
channel) and per train, bounded by the fleet's channel count, and restores from it. The model
bank (`ModelBank.remember`) writes them into its snapshot beside the forests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import msgspec

from railpulse_detector.operating import OperatingState

__all__ = [
    "JudgeState",
    "Remembers",
    "dump_operating",
    "export_channels",
    "int_or_none",
    "load_operating",
    "nan_or_float",
    "restore_channels",
]

T = TypeVar("T")


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


class Dumps(Protocol):
    def dump(self) -> list[float]: ...


def export_channels(
    channels: Mapping[str, Mapping[str, Dumps]], trains: Mapping[str, OperatingState]
) -> JudgeState:
    """The state of a judge that keeps one object per (train, channel) and an operating clock."""
    return JudgeState(
        channels={
            train: {name: c.dump() for name, c in per_train.items()}
            for train, per_train in channels.items()
        },
        trains={t: dump_operating(o) for t, o in trains.items()},
    )


def restore_channels(
    saved: JudgeState, load: Callable[[list[float]], T]
) -> tuple[dict[str, dict[str, T]], dict[str, OperatingState]]:
    """`export_channels` undone: each channel's numbers through `load` (which raises ValueError
    on numbers it cannot use), and the trains' operating states."""
    channels = {
        train: {name: load(numbers) for name, numbers in per_train.items()}
        for train, per_train in saved.channels.items()
    }
    return channels, {t: load_operating(numbers) for t, numbers in saved.trains.items()}


def dump_operating(state: OperatingState) -> list[float]:
    return [
        nan_or_float(state.last_ms),
        float(state.powered_ms),
        nan_or_float(state.moved_ms),
        float(state.midway),
    ]


def load_operating(saved: list[float]) -> OperatingState:
    if len(saved) != 4:
        raise ValueError(f"operating state: 4 numbers expected, got {len(saved)}")
    return OperatingState(
        last_ms=int_or_none(saved[0]),
        powered_ms=int(saved[1]),
        moved_ms=int_or_none(saved[2]),
        midway=bool(saved[3]),
    )


def nan_or_float(value: int | None) -> float:
    """An optional time as a snapshot number (NaN: none)."""
    return math.nan if value is None else float(value)


def int_or_none(value: float) -> int | None:
    return None if math.isnan(value) else int(value)
