"""What a train sends: frames of readings, and batches of them when it backfills.

A frame is one sample of a train's channels at one sensor time. `seq` is per train, strictly
increasing across restarts (the edge agent persists it): with `train` it is the frame's identity,
which ingest de-duplicates on. Readings are keyed by channel name (see `railpulse_shared.catalogue`);
a channel the train does not have is simply absent.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from railpulse_shared.contracts._base import Event, Wire

__all__ = ["Frame", "FrameBatch", "GenericReading", "Position"]

TrainId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
EpochMs = Annotated[int, msgspec.Meta(ge=0)]


class Position(Wire, frozen=True, array_like=True):
    """WGS84 latitude and longitude in degrees (encoded as `[lat, lon]`)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Frame(Event, frozen=True, kw_only=True, tag="frame.v1"):
    """One sample of a train's sensors."""

    train: TrainId
    seq: Annotated[int, msgspec.Meta(ge=0)]
    ts_ms: EpochMs
    """Sensor time, UTC epoch milliseconds, from the train's clock."""
    readings: dict[str, float]
    position: Position | None = None
    speed_kmh: float | None = None
    backfill: bool = False
    """True when the frame was spooled during an outage and sent later."""


class FrameBatch(Event, frozen=True, kw_only=True, tag="frames.v1"):
    """Several frames of one train in one message, oldest first (backfill)."""

    train: TrainId
    frames: Annotated[list[Frame], msgspec.Meta(min_length=1)]


class GenericReading(Wire, frozen=True):
    """The flat generic sensor payload of the reference projects, once parsed.

    On the wire it is an untagged JSON object: `{"device_id": "sensor-101", "timestamp":
    1700100000, "temperature": 22, "humidity": 55}` (seed 003), or the seed 004 shape with
    `timestamp_sent`. Every other numeric field is a reading; see `codec.parse_generic`.
    """

    device_id: str | None
    timestamp: float
    """Sensor time in epoch seconds (fractions allowed)."""
    readings: dict[str, float]
    timestamp_sent: str | None = None
