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
    Severity,
)
from railpulse_shared.contracts.envelope import RuleEnvelope
from railpulse_shared.contracts.ingest import (
    AcceptedFrame,
    DeviceKind,
    Quality,
    Reading,
    RejectedRecord,
    RejectReason,
    SourcePosition,
)
from railpulse_shared.contracts.shadow import DesiredAlerts, ReportedAlerts, ShadowAlert
from railpulse_shared.contracts.telemetry import Frame, FrameBatch, GenericReading, Position

__all__ = [
    "EVENT_TYPES",
    "WIRE_TYPES",
    "AcceptedFrame",
    "AlarmState",
    "AlarmTransition",
    "Anomaly",
    "AnomalyKind",
    "AnyEvent",
    "Attribution",
    "DesiredAlerts",
    "DeviceKind",
    "DeviceMessage",
    "Event",
    "Frame",
    "FrameBatch",
    "GenericReading",
    "Position",
    "Quality",
    "Reading",
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
