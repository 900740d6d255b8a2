"""A train's operating state, from what its frames say: when it powered up, when it first moved.

A train that sends nothing for `power_gap_ms` was powered down (a depot night; a tunnel spools and
backfills, so live frames resume within minutes). Its next frame starts a powered period: the cold
start and preparation (the compressor charges the reservoir, the HVAC pre-conditions the saloons,
bearings and motors are at the outside temperature), then service once it first moves. Judges
whose normal depends on the state ask here. Older frames (backfill) do not move the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OperatingState", "PowerClock"]

POWER_GAP_MS = 1_800_000
MOVING_KMH = 1.0


@dataclass(slots=True)
class OperatingState:
    last_ms: int | None = None
    """The newest frame's sensor time."""
    powered_ms: int = 0
    """When the train powered up (its first frame after a gap)."""
    moved_ms: int | None = None
    """When it first moved since it powered up (None: still being prepared)."""
    midway: bool = False
    """Its first frame after the gap already showed it moving: not a morning start but a train
    met in service (the detector started, or the train came back into coverage)."""

    def seconds_powered(self, ts_ms: int) -> float:
        return (ts_ms - self.powered_ms) / 1000.0

    def seconds_in_service(self, ts_ms: int) -> float | None:
        if self.midway:
            return math.inf
        return None if self.moved_ms is None else (ts_ms - self.moved_ms) / 1000.0


class PowerClock:
    """Operating state per train."""

    def __init__(self, power_gap_ms: int = POWER_GAP_MS, moving_kmh: float = MOVING_KMH) -> None:
        self.power_gap_ms = power_gap_ms
        self.moving_kmh = moving_kmh
        self.trains: dict[str, OperatingState] = {}

    def update(
        self, train: str, ts_ms: int, speed_kmh: float | None
    ) -> tuple[OperatingState, bool]:
        """The train's state after a frame, and whether this frame powered it up."""
        state = self.trains.get(train)
        if state is None:  # (not setdefault: that would build a state for every frame)
            state = self.trains[train] = OperatingState()
        if state.last_ms is not None and ts_ms <= state.last_ms:
            return state, False
        fresh = state.last_ms is None or ts_ms - state.last_ms >= self.power_gap_ms
        moving = (speed_kmh or 0.0) > self.moving_kmh
        if fresh:
            state.powered_ms, state.moved_ms, state.midway = ts_ms, None, moving
        if state.moved_ms is None and moving:
            state.moved_ms = ts_ms
        state.last_ms = ts_ms
        return state, fresh
