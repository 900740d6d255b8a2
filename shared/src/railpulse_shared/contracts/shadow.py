"""The device shadow document the notifier writes and the edge agent reads.

Desired state (written by the notifier): `{"alerts": {"open": [ShadowAlert...], "omitted": N}}`,
most severe first, bounded so the document stays under the shadow size limit; `omitted` counts
what did not fit. Reported state (written by the train): `{"alerts": {"acked": [alarm_id...]}}`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from railpulse_shared.contracts._base import Wire
from railpulse_shared.contracts.anomaly import MAX_EVIDENCE, AnomalyKind, Severity
from railpulse_shared.contracts.telemetry import MAX_CHANNELS, ChannelName, Count, EpochMs

__all__ = ["DesiredAlerts", "ReportedAlerts", "ShadowAlert"]


class ShadowAlert(Wire, frozen=True):
    alarm_id: str
    alert_key: str
    category: AnomalyKind
    severity: Severity
    raised_ms: EpochMs
    channels: Annotated[list[ChannelName], msgspec.Meta(max_length=MAX_CHANNELS)] = msgspec.field(
        default_factory=list
    )
    message: str = ""
    evidence: Annotated[list[str], msgspec.Meta(max_length=MAX_EVIDENCE)] = msgspec.field(
        default_factory=list
    )
    """The rules and models that saw the condition (`limit`, `peers`, `model`...)."""


class DesiredAlerts(Wire, frozen=True):
    open: list[ShadowAlert] = msgspec.field(default_factory=list)
    omitted: Count = 0


class ReportedAlerts(Wire, frozen=True):
    acked: list[str] = msgspec.field(default_factory=list)
