"""What ingest emits: accepted frames on Kinesis `telemetry`, rejects on the dead-letter queue."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from railpulse_shared.contracts._base import Event, Wire
from railpulse_shared.contracts.telemetry import (
    MAX_CHANNELS,
    ChannelKey,
    Count,
    EpochMs,
    Position,
    Seq,
    TrainId,
)

__all__ = [
    "AcceptedFrame",
    "AcceptedReadings",
    "DeviceKind",
    "Quality",
    "Reading",
    "RejectReason",
    "RejectedRecord",
    "SourcePosition",
]


class Quality(enum.StrEnum):
    """How far a reading can be trusted, from the channel catalogue."""

    GOOD = "good"
    INVALID = "invalid"
    """Outside the physically possible range: kept, flagged, never fed to a model (sensor fault)."""
    UNCATALOGUED = "uncatalogued"
    """A numeric channel the catalogue does not know: kept and counted, not judged."""


class DeviceKind(enum.StrEnum):
    TRAIN = "train"
    SENSOR = "sensor"
    """A generic sensor sending the flat payload of the reference projects."""


# gc=False: a float and a string cannot form a cycle, and ingest makes ~33 of these per frame.
class Reading(Wire, frozen=True, array_like=True, gc=False):
    """One channel's value and its quality (encoded as `[value, "good"]`)."""

    value: float
    quality: Quality = Quality.GOOD


AcceptedReadings = Annotated[dict[ChannelKey, Reading], msgspec.Meta(max_length=MAX_CHANNELS)]
"""Canonical channel name → reading (names checked against `ChannelName` by ingest)."""


class SourcePosition(Wire, frozen=True):
    """Where a record was read: enough to find it again in the stream."""

    stream: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: Count = 0


class AcceptedFrame(Event, frozen=True, kw_only=True, tag="accepted.v1"):
    """A validated, normalised frame: UTC epoch ms, canonical channel names and units."""

    train: TrainId
    seq: Seq
    ts_ms: EpochMs
    readings: AcceptedReadings
    device_kind: DeviceKind = DeviceKind.TRAIN
    position: Position | None = None
    speed_kmh: float | None = None
    backfill: bool = False
    received_ms: EpochMs = 0
    """When the broker received the message (from the rule envelope)."""
    ingested_ms: EpochMs = 0
    """When ingest accepted it."""
    source: SourcePosition | None = None
    epoch: Count = 0
    """The device's counter epoch (`Frame.epoch`; 0 for generic sensors and older agents):
    (`train`, `epoch`, `seq`) is the frame's identity."""


class RejectReason(enum.StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    IDENTITY_MISMATCH = "identity_mismatch"
    OVERSIZED = "oversized"
    TIMESTAMP_OUT_OF_BOUNDS = "timestamp_out_of_bounds"
    UNKNOWN_KIND = "unknown_kind"
    BAD_ENVELOPE = "bad_envelope"
    HANDLER_ERROR = "handler_error"
    """A consumer's handler raised for the record, again and again (a bug, or input nothing
    upstream refused): dead-lettered so the shard moves on."""
    UNSTORABLE = "unstorable"
    """A valid event the lake or warehouse cannot hold (an integer beyond int64, a NUL)."""
    SEQ_CONFLICT = "seq_conflict"
    """A frame whose (train, epoch, seq) was accepted before with other content: kept here,
    not forwarded (the detail has both content hashes)."""


class RejectedRecord(Event, frozen=True, kw_only=True, tag="rejected.v1"):
    """A record that cannot become data, with the reason and its raw bytes intact."""

    reason: RejectReason
    detail: str
    raw: bytes
    """The bytes as they arrived (empty when too large for SQS: then see `raw_s3_uri`)."""
    source: SourcePosition
    rejected_ms: EpochMs
    device: str | None = None
    """The authenticated device, when the envelope could be read."""
    raw_s3_uri: str | None = None
    raw_size: Count = 0
    consumer: str = ""
    """The consumer that dead-lettered the record (empty: ingest rejected it)."""
    raw_kind: str = ""
    """What `raw` is: `payload` (what the device published), `record` (the whole `telemetry-raw`
    record) or `event` (a record of `source.stream` its consumer could not handle)."""
    topic: str = ""
    """The MQTT topic the device published on, when the envelope could be read."""
    received_ms: EpochMs = 0
    """When the broker received the message (0: not known)."""
