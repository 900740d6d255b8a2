"""What a train sends: frames of readings, and batches of them when it backfills.

A frame is one sample of a train's channels at one sensor time. `seq` is per train and counter
`epoch`, strictly increasing across restarts (the edge agent persists both with its spool):
(`train`, `epoch`, `seq`) is the frame's identity, which ingest de-duplicates on. A counter that
starts again (a new spool: storage replaced, spool lost) gets a new epoch, so its frames are new
data. Readings are keyed by channel name (see `railpulse_shared.catalogue`); a channel the train
does not have is simply absent.

Bounds (input is checked against them when decoded, so nothing downstream meets a value it cannot
store): every integer is in [0, 2^63) (a signed 64-bit integer in Parquet and PostgreSQL), a time
at most 9999-12-31 (what datetime, Parquet and PostgreSQL all hold), a channel name
`CHANNEL_NAME_PATTERN` (printable ASCII, no NUL, no space, at most 64 characters) and a frame at
most `MAX_CHANNELS` readings (the catalogue's largest train has 33).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from railpulse_shared.contracts._base import Event, Wire

__all__ = [
    "CHANNEL_NAME_CHARS",
    "CHANNEL_NAME_PATTERN",
    "MAX_BATCH_FRAMES",
    "MAX_CHANNELS",
    "MAX_CHANNEL_NAME",
    "MAX_EPOCH_MS",
    "MAX_INT",
    "ChannelKey",
    "ChannelName",
    "Count",
    "EpochMs",
    "Frame",
    "FrameBatch",
    "GenericReading",
    "Position",
    "Readings",
    "Seq",
    "TrainId",
]

MAX_INT = 2**63 - 1
"""The largest integer: what fits a signed 64-bit column (Parquet INT64, PostgreSQL bigint)."""
MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest time Python's datetime, Parquet and PostgreSQL all hold."""
MAX_CHANNELS = 256
"""Readings per frame: a round number far above the catalogue's largest train (33 channels)."""
MAX_CHANNEL_NAME = 64
CHANNEL_NAME_CHARS = "A-Za-z0-9_.:/-"
"""Printable ASCII a database column, a URL path and a log line all take as it is."""
CHANNEL_NAME_PATTERN = rf"^[{CHANNEL_NAME_CHARS}]+$(?!\n)"
"""`(?!\n)`: Python's `$` (which msgspec uses) also matches before a final newline."""
MAX_BATCH_FRAMES = 1024
"""Frames per batch (the 128 KiB message limit already keeps real batches far below)."""

TrainId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
"""A non-negative 64-bit integer (a count, a size, an id)."""
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EPOCH_MS)]
"""UTC epoch milliseconds, 1970 to 9999."""
ChannelName = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_CHANNEL_NAME, pattern=CHANNEL_NAME_PATTERN),
]
"""A channel name as a device may send it (canonical, an alias or an uncatalogued name)."""
ChannelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CHANNEL_NAME)]
"""A channel name in ingest's output (`accepted.v1`): ingest checked its characters against
`ChannelName` on the way in, so readers only bound its length. Checking the pattern again on
every reading of every frame (Python's `re`, per key) would triple what a consumer spends
decoding a frame."""
Readings = Annotated[dict[ChannelName, float], msgspec.Meta(max_length=MAX_CHANNELS)]


class Position(Wire, frozen=True, array_like=True):
    """WGS84 latitude and longitude in degrees (encoded as `[lat, lon]`)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Frame(Event, frozen=True, kw_only=True, tag="frame.v1"):
    """One sample of a train's sensors."""

    train: TrainId
    seq: Seq
    ts_ms: EpochMs
    """Sensor time, UTC epoch milliseconds, from the train's clock."""
    readings: Readings
    position: Position | None = None
    speed_kmh: float | None = None
    backfill: bool = False
    """True when the frame was spooled during an outage and sent later."""
    epoch: Count = 0
    """The edge agent's counter epoch: a random id made with its spool (and its `seq` counter)
    and kept with it, new when the counter starts again. 0: not known (an older agent)."""


class FrameBatch(Event, frozen=True, kw_only=True, tag="frames.v1"):
    """Several frames of one train in one message, oldest first (backfill)."""

    train: TrainId
    frames: Annotated[list[Frame], msgspec.Meta(min_length=1, max_length=MAX_BATCH_FRAMES)]


class GenericReading(Wire, frozen=True):
    """The flat generic sensor payload of the reference projects, once parsed.

    On the wire it is an untagged JSON object: `{"device_id": "sensor-101", "timestamp":
    1700100000, "temperature": 22, "humidity": 55}` (seed 003), or the seed 004 shape with
    `timestamp_sent`. Every other numeric field is a reading; see `codec.parse_generic`.
    """

    device_id: str | None
    timestamp: float
    """Sensor time in epoch seconds (fractions allowed)."""
    readings: Readings
    timestamp_sent: str | None = None
