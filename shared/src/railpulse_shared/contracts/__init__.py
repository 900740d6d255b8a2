"""Every event railpulse services exchange, once, as versioned msgspec Structs.

`AnyEvent` is the tagged union (`kind` is the tag); `railpulse_shared.codec` has the one decoder
and encoder for it. Breaking changes get a new `.v2` Struct that joins the union beside the old one.
"""

from __future__ import annotations

from railpulse_shared.contracts._base import Event, Wire
from railpulse_shared.contracts.anomaly import (
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Attribution,
    Evidence,
    Severity,
)
from railpulse_shared.contracts.envelope import RuleEnvelope
from railpulse_shared.contracts.ingest import (
    AcceptedFrame,
    AcceptedReadings,
    DeviceKind,
    Quality,
    Reading,
    RejectedRecord,
    RejectReason,
    SourcePosition,
)
from railpulse_shared.contracts.shadow import DesiredAlerts, ReportedAlerts, ShadowAlert
from railpulse_shared.contracts.telemetry import (
    CHANNEL_NAME_CHARS,
    CHANNEL_NAME_PATTERN,
    MAX_BATCH_FRAMES,
    MAX_CHANNEL_NAME,
    MAX_CHANNELS,
    ChannelName,
    Frame,
    FrameBatch,
    GenericReading,
    Position,
    Readings,
)

__all__ = [
    "CHANNEL_NAME_CHARS",
    "CHANNEL_NAME_PATTERN",
    "EVENT_TYPES",
    "MAX_BATCH_FRAMES",
    "MAX_CHANNELS",
    "MAX_CHANNEL_NAME",
    "WIRE_TYPES",
    "AcceptedFrame",
    "AcceptedReadings",
    "AlarmState",
    "AlarmTransition",
    "Anomaly",
    "AnomalyKind",
    "AnyEvent",
    "Attribution",
    "ChannelName",
    "DesiredAlerts",
    "DeviceKind",
    "DeviceMessage",
    "Event",
    "Evidence",
    "Frame",
    "FrameBatch",
    "GenericReading",
    "Position",
    "Quality",
    "Reading",
    "Readings",
    "RejectReason",
    "RejectedRecord",
    "ReportedAlerts",
    "RuleEnvelope",
    "Severity",
    "ShadowAlert",
    "SourcePosition",
    "Wire",
]

AnyEvent = Frame | FrameBatch | AcceptedFrame | RejectedRecord | Anomaly | AlarmTransition
"""Every tagged event, all versions still in use."""

DeviceMessage = Frame | FrameBatch
"""What a train publishes (the flat generic payload is untagged: see `codec.parse_generic`)."""

EVENT_TYPES: tuple[type[Event], ...] = (
    Frame,
    FrameBatch,
    AcceptedFrame,
    RejectedRecord,
    Anomaly,
    AlarmTransition,
)
WIRE_TYPES: tuple[type[Wire], ...] = (
    RuleEnvelope,
    GenericReading,
    DesiredAlerts,
    ReportedAlerts,
)
