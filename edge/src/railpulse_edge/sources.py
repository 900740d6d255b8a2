"""Pluggable sensor sources: what the agent samples at its rate.

A source is any object with `read(now_s) -> Sample | None` (None: nothing this tick). Built in:
`sim` (a one-train FleetModel seeded by the thing name). Any other source is named
`package.module:factory`, where `factory(thing: str, rate_hz: float)` returns a source.
"""

from __future__ import annotations

import importlib
import zlib
from dataclasses import dataclass
from typing import Protocol

from railpulse_edge.errors import SourceError
from railpulse_edge.sim.model import CHANNELS, FleetModel

__all__ = ["Sample", "SensorSource", "SimSource", "load_source"]


@dataclass(frozen=True, slots=True)
class Sample:
    readings: dict[str, float]
    speed_kmh: float | None = None
    position: tuple[float, float] | None = None
    rounded: bool = False
    """Readings already rounded to 3 decimals and finite or NaN (the fleet's vectorised path)."""


class SensorSource(Protocol):
    def read(self, now_s: float) -> Sample | None: ...


class SimSource:
    """One simulated train (the fleet model with n=1), advancing by the sampling period."""

    def __init__(self, thing: str, rate_hz: float) -> None:
        self._model = FleetModel(1, seed=zlib.crc32(thing.encode()))
        self._dt = 1.0 / rate_hz

    def read(self, now_s: float) -> Sample:
        snap = self._model.step(self._dt)
        row = snap.values[0]
        return Sample(
            readings=dict(zip(CHANNELS, row.tolist(), strict=True)),
            speed_kmh=float(snap.speed_kmh[0]),
            position=(float(snap.lat[0]), float(snap.lon[0])),
        )


def load_source(spec: str, thing: str, rate_hz: float) -> SensorSource:
    if spec == "sim":
        return SimSource(thing, rate_hz)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SourceError(f"source {spec!r}: expected 'sim' or 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SourceError(f"source {spec!r}: {exc}") from exc
    source = factory(thing, rate_hz)
    if not callable(getattr(source, "read", None)):
        raise SourceError(f"source {spec!r}: {type(source).__name__} has no read(now_s)")
    return source  # type: ignore[no-any-return]
