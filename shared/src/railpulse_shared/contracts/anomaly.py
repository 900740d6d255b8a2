"""What the detector finds and what the notifier does with it."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

from railpulse_shared.contracts._base import Event, Wire
from railpulse_shared.contracts.telemetry import (
    MAX_CHANNELS,
    MAX_INT,
    ChannelName,
    EpochMs,
    Seq,
    TrainId,
)

__all__ = [
    "AlarmState",
    "AlarmTransition",
    "Anomaly",
    "AnomalyKind",
    "Attribution",
    "Evidence",
    "Severity",
]

MAX_EVIDENCE = 16
"""Rules and models that may see one condition: far more than the detector has."""


class AnomalyKind(enum.StrEnum):
    MODEL = "model"
    """The Random Cut Forest scored the frame above its adaptive threshold."""
    LIMIT = "limit"
    """A reading is past a limit: the catalogue's operating or critical range, the spread allowed
    from its peers, or (a one-reading spike) its own usual change from one reading to the next."""
    SENSOR_FAULT = "sensor_fault"
    """A stuck sensor, a dropout, or a physically impossible reading."""


class Severity(enum.IntEnum):
    """Ordered: a higher value is more severe (escalation compares them)."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3


class Attribution(Wire, frozen=True):
    """How much one channel explains the score (RANDOM_CUT_FOREST_WITH_EXPLANATION)."""

    channel: ChannelName
    contribution: float
    direction: Literal["high", "low"] = "high"
    value: float | None = None
    """What the channel read."""
    expected: float | None = None
    """What it should have read (the limit it crossed, or its estimate from the train's state
    and its peers); None when the decision has no such figure (the forest's)."""


class Evidence(Wire, frozen=True):
    """One rule or model that saw a condition, and what it said."""

    source: str
    """The rule or model: `limit`, `peers`, `sensor_fault`, `model` (the prefix of the key it
    keeps its own state under, e.g. `peers:bearing_temp_2`)."""
    category: AnomalyKind
    severity: Severity
    message: str = ""
    score: float = 1.0
    threshold: float = 1.0


class Anomaly(Event, frozen=True, kw_only=True, tag="anomaly.v1"):
    """An anomaly on one train, at the sensor time of the frame that showed it."""

    anomaly_id: str
    """Deterministic from (train, frame seq, alert_key): a replay produces the same id."""
    train: TrainId
    ts_ms: EpochMs
    """Sensor time of the triggering frame."""
    frame_seq: Seq
    category: AnomalyKind
    severity: Severity
    score: float
    threshold: float
    alert_key: str
    """What an alarm is about: the condition, i.e. the channel (`bearing_temp_2`; for the forest
    its top channel). One open alarm per (train, alert_key), whichever rules and models saw it:
    they are its `evidence`. Older detectors sent `<rule>:<channel>` (`limit:bearing_temp_2`);
    readers take either as an opaque key."""
    channels: Annotated[list[Attribution], msgspec.Meta(max_length=MAX_CHANNELS)] = msgspec.field(
        default_factory=list
    )
    model_version: str = ""
    message: str = ""
    received_ms: EpochMs = 0
    ingested_ms: EpochMs = 0
    detected_ms: EpochMs = 0
    evidence: Annotated[list[Evidence], msgspec.Meta(max_length=MAX_EVIDENCE)] = msgspec.field(
        default_factory=list
    )
    """Every rule and model that saw this condition in this frame; `severity`, `category`,
    `score` and `message` are those of the most severe. Empty from older detectors: the anomaly
    itself is then its only evidence."""


class AlarmState(enum.StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class AlarmTransition(Event, frozen=True, kw_only=True, tag="alarm.v1"):
    """One step of an alarm's lifecycle: raised → escalated → acknowledged → cleared."""

    alarm_id: str
    train: TrainId
    alert_key: str
    state: AlarmState
    previous: AlarmState | None = None
    severity: Severity
    at_ms: EpochMs
    anomaly_id: str | None = None
    reason: str = ""
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_INT)] = 1
    """The alarm record's version after this transition (conditional writes order them)."""
    category: AnomalyKind | None = None
    """The category of the alarm's most severe evidence (None from older notifiers: the
    `<category>:` prefix of their alert keys said it)."""
    evidence: Annotated[list[str], msgspec.Meta(max_length=MAX_EVIDENCE)] = msgspec.field(
        default_factory=list
    )
    """The sources (`limit`, `peers`, `model`...) that have seen the alarm's condition so far."""
