"""The alarm state machine per (train, alert_key), as pure functions over `AlarmRecord`.

The alert key is the condition (a channel: `bearing_temp_2`), not the rule that saw it: a hot
bearing beyond its limit and beyond its peers is one alarm, raised, acknowledged and cleared once.
Each rule or model that sees the condition is a piece of its `evidence` (the anomaly's, or, from an
older detector that keyed alarms by rule, the anomaly itself); the alarm's severity is the highest
any of them gave while it was open, and it clears once all of them have gone quiet for
`clear_after_ms` (the record's `last_seen_ms` is its newest evidence's). Records keyed the old way
(`limit:bearing_temp_2`) are alarms like any other: they get no more anomalies from a current
detector, so they clear after one quiet period.

    (none|cleared) --anomaly--> raised --severity rises--> escalated --train acks--> acknowledged
    any open state --no anomaly for `clear_after_ms`--> cleared
    acknowledged --severity rises--> escalated (needs a new acknowledgement)

Hysteresis keeps a flapping signal to one alarm: an alarm opens on the first anomaly but only
closes after a whole quiet period, and its severity only goes up while it is open. Repeats update
the open alarm (count, last seen) instead of raising another. Every function returns the new
record (or None when nothing needs writing) and the transitions it caused; the store writes them
with a conditional version check, so the caller can re-run a function on fresh state after losing
a race and still produce each transition once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec

from railpulse_shared.contracts import (
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Evidence,
    Severity,
)

__all__ = [
    "OPEN_STATES",
    "AlarmRecord",
    "EvidenceSeen",
    "Outcome",
    "Rules",
    "acknowledge",
    "alarm_id_for",
    "apply_anomaly",
    "clear_if_quiet",
    "evidence_of",
    "reading_time_ms",
]

OPEN_STATES = frozenset({AlarmState.RAISED, AlarmState.ESCALATED, AlarmState.ACKNOWLEDGED})
_SEEN_MAX = 32
"""Recent anomaly ids kept on a record: a redelivery inside this window is recognised."""
_EVIDENCE_MAX = 16


class EvidenceSeen(msgspec.Struct, frozen=True, kw_only=True):
    """One rule or model that has seen an alarm's condition while it was open."""

    source: str
    category: AnomalyKind
    severity: Severity
    """The highest it gave while the alarm was open."""
    message: str = ""
    last_seen_ms: int = 0
    """Wall time of the latest anomaly that carried it."""


class AlarmRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One alarm's state, as stored (the item's `doc`); `version` is the item's write counter."""

    train: str
    alert_key: str
    alarm_id: str
    state: AlarmState
    severity: Severity
    category: AnomalyKind
    raised_ms: int
    """Wall time the alarm was raised."""
    last_seen_ms: int
    """Wall time of the last anomaly written (the quiet timer runs from here)."""
    last_ts_ms: int
    """Sensor time of the newest anomaly applied."""
    trigger_ts_ms: int
    """Sensor time of the anomaly behind the latest raise or escalation (latency metric)."""
    trigger_id: str
    """Anomaly behind the latest raise or escalation: its redelivery re-syncs shadow and events."""
    needs_ack_ms: int
    """Wall time of the latest raise or escalation; an acknowledgement must come after it."""
    count: int = 1
    channels: list[str] = msgspec.field(default_factory=list)
    message: str = ""
    cleared_ms: int = 0
    seen: list[str] = msgspec.field(default_factory=list)
    outbox: list[AlarmTransition] = msgspec.field(default_factory=list)
    """Transitions of the latest write that made any."""
    evidence: list[EvidenceSeen] = msgspec.field(default_factory=list)
    """Who saw the condition, in the order they first did (empty on records written before
    evidence existed: they clear as before)."""
    pending: bool = False
    """The outbox is not confirmed delivered (events appended, shadow written): a redelivery of
    its trigger re-sends it. Stored as its own attribute, cleared by `AlarmStore.confirm`."""
    version: int = 0

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True, slots=True)
class Rules:
    clear_after_ms: int
    touch_ms: int
    """Minimum wall time between writes of a repeat that changes nothing but the counters."""


@dataclass(slots=True)
class Outcome:
    record: AlarmRecord | None
    """The record to write, or None when the store already has everything."""
    transitions: list[AlarmTransition] = field(default_factory=list)
    duplicate: bool = False
    """The anomaly was applied before (a redelivery)."""
    resync: bool = False
    """A redelivery of the anomaly behind the current state: if its delivery is unconfirmed
    (`AlarmRecord.pending`), re-send its events and shadow."""


def alarm_id_for(train: str, alert_key: str, anomaly_id: str) -> str:
    """Deterministic: two notifiers raising from the same anomaly agree on the id."""
    digest = hashlib.blake2b(f"{train}\x1f{alert_key}\x1f{anomaly_id}".encode(), digest_size=8)
    return digest.hexdigest()


def _transition(
    record: AlarmRecord, state: AlarmState, previous: AlarmState | None, at_ms: int, **kw: object
) -> AlarmTransition:
    return AlarmTransition(
        alarm_id=record.alarm_id,
        train=record.train,
        alert_key=record.alert_key,
        state=state,
        previous=previous,
        severity=record.severity,
        at_ms=at_ms,
        version=record.version + 1,
        category=record.category,
        evidence=[e.source for e in record.evidence],
        **kw,  # type: ignore[arg-type]
    )


def _seen(record: AlarmRecord, anomaly_id: str) -> list[str]:
    return [*record.seen[-(_SEEN_MAX - 1) :], anomaly_id]


def evidence_of(anomaly: Anomaly) -> list[Evidence]:
    """What the anomaly says saw it; an older detector's anomaly is its own one piece."""
    if anomaly.evidence:
        return list(anomaly.evidence)
    source = anomaly.alert_key.partition(":")[0] if ":" in anomaly.alert_key else ""
    return [
        Evidence(
            source=source or anomaly.category.value,
            category=anomaly.category,
            severity=anomaly.severity,
            message=anomaly.message,
            score=anomaly.score,
            threshold=anomaly.threshold,
        )
    ]


def _merge_evidence(
    held: list[EvidenceSeen], anomaly: Anomaly, now_ms: int
) -> tuple[list[EvidenceSeen], bool]:
    """The record's evidence with the anomaly's added; True if a source is new to it."""
    merged = {e.source: e for e in held}
    new = False
    for e in evidence_of(anomaly):
        before = merged.get(e.source)
        new = new or before is None
        merged[e.source] = EvidenceSeen(
            source=e.source,
            category=e.category if before is None or e.severity >= before.severity
            else before.category,
            severity=max(e.severity, before.severity) if before else e.severity,
            message=e.message[:120] or (before.message if before else ""),
            last_seen_ms=now_ms,
        )
    return list(merged.values())[:_EVIDENCE_MAX], new


def _severity(anomaly: Anomaly) -> Severity:
    return max([anomaly.severity, *(e.severity for e in anomaly.evidence)])


def _raise(anomaly: Anomaly, now_ms: int, version: int) -> AlarmRecord:
    evidence, _ = _merge_evidence([], anomaly, now_ms)
    return AlarmRecord(
        train=anomaly.train,
        alert_key=anomaly.alert_key,
        alarm_id=alarm_id_for(anomaly.train, anomaly.alert_key, anomaly.anomaly_id),
        state=AlarmState.RAISED,
        severity=_severity(anomaly),
        category=anomaly.category,
        raised_ms=now_ms,
        last_seen_ms=now_ms,
        last_ts_ms=anomaly.ts_ms,
        trigger_ts_ms=anomaly.ts_ms,
        trigger_id=anomaly.anomaly_id,
        needs_ack_ms=now_ms,
        channels=[c.channel for c in anomaly.channels[:3]],
        message=anomaly.message[:120],
        seen=[anomaly.anomaly_id],
        version=version,
        evidence=evidence,
    )


def apply_anomaly(
    record: AlarmRecord | None, anomaly: Anomaly, now_ms: int, rules: Rules
) -> Outcome:
    """What one anomaly does to the alarm of its (train, alert_key): raise it, escalate it when
    the anomaly is more severe than anything before, add evidence a new source brings, or count
    a repeat."""
    if record is not None and anomaly.anomaly_id in record.seen:
        return Outcome(None, duplicate=True, resync=record.trigger_id == anomaly.anomaly_id)
    if record is None or not record.open:
        if record is not None and anomaly.ts_ms <= record.last_ts_ms:
            # Older than what the cleared alarm already covered (a late redelivery or backfill).
            return Outcome(None, duplicate=True)
        raised = _raise(anomaly, now_ms, record.version if record else 0)
        t = _transition(raised, AlarmState.RAISED, None, now_ms, anomaly_id=anomaly.anomaly_id,
                        reason=f"{anomaly.category.value} anomaly, score {anomaly.score:.3g}"
                        f" (seen by {', '.join(e.source for e in raised.evidence)})")
        return Outcome(msgspec.structs.replace(raised, outbox=[t], pending=True), [t])
    evidence, new_source = _merge_evidence(record.evidence, anomaly, now_ms)
    severity = _severity(anomaly)
    if severity > record.severity:
        top = next((e for e in evidence_of(anomaly) if e.severity == severity), None)
        escalated = msgspec.structs.replace(
            record,
            state=AlarmState.ESCALATED,
            severity=severity,
            category=top.category if top is not None else anomaly.category,
            evidence=evidence,
            last_seen_ms=now_ms,
            last_ts_ms=max(record.last_ts_ms, anomaly.ts_ms),
            trigger_ts_ms=anomaly.ts_ms,
            trigger_id=anomaly.anomaly_id,
            needs_ack_ms=now_ms,
            count=record.count + 1,
            message=anomaly.message[:120] or record.message,
            seen=_seen(record, anomaly.anomaly_id),
        )
        t = _transition(escalated, AlarmState.ESCALATED, record.state, now_ms,
                        anomaly_id=anomaly.anomaly_id,
                        reason=f"severity {record.severity.name} -> {severity.name}"
                        f" (seen by {', '.join(e.source for e in evidence)})")
        return Outcome(msgspec.structs.replace(escalated, outbox=[t], pending=True), [t])
    if not new_source and now_ms - record.last_seen_ms < rules.touch_ms:
        # A repeat inside the touch window changes nothing the lifecycle needs: skip the write.
        return Outcome(None)
    # New evidence of the same or a lower severity is written (the crew's alert lists it) but
    # is not a transition: nothing new to acknowledge.
    touched = msgspec.structs.replace(
        record,
        evidence=evidence,
        last_seen_ms=now_ms,
        last_ts_ms=max(record.last_ts_ms, anomaly.ts_ms),
        count=record.count + 1,
        seen=_seen(record, anomaly.anomaly_id),
    )
    return Outcome(touched)


def acknowledge(record: AlarmRecord, acked_at_ms: int, now_ms: int) -> Outcome:
    """The train reported this alarm acknowledged at `acked_at_ms` (shadow metadata time)."""
    if record.state not in (AlarmState.RAISED, AlarmState.ESCALATED):
        return Outcome(None)
    # Shadow timestamps are whole seconds: compare at that resolution.
    if acked_at_ms // 1000 < record.needs_ack_ms // 1000:
        return Outcome(None)
    acked = msgspec.structs.replace(record, state=AlarmState.ACKNOWLEDGED)
    t = _transition(acked, AlarmState.ACKNOWLEDGED, record.state, now_ms, reason="reported by train")
    return Outcome(msgspec.structs.replace(acked, outbox=[t], pending=True), [t])


def clear_if_quiet(record: AlarmRecord, now_ms: int, rules: Rules) -> Outcome:
    if not record.open or now_ms - record.last_seen_ms < rules.clear_after_ms:
        return Outcome(None)
    cleared = msgspec.structs.replace(record, state=AlarmState.CLEARED, cleared_ms=now_ms)
    t = _transition(cleared, AlarmState.CLEARED, record.state, now_ms,
                    reason=f"no anomaly for {rules.clear_after_ms // 1000} s")
    return Outcome(msgspec.structs.replace(cleared, outbox=[t], pending=True), [t])


def reading_time_ms(anomaly: Anomaly, clock_skew_tolerance_ms: int) -> int:
    """When the reading behind `anomaly` was taken, as far as the platform can tell: its sensor
    time, unless that lies further than the tolerance from the IoT receipt time, i.e. the train's
    clock is skewed (minutes ahead or behind) or the frame was backfilled (its age is the outage):
    then the receipt time. Latency measured from here is the platform's, never the clock's.

    The lifecycle itself never compares sensor times with wall time (the quiet period runs on
    wall time), so a skewed clock changes no alarm; only this measurement needs the anchor."""
    if anomaly.received_ms and abs(anomaly.received_ms - anomaly.ts_ms) > clock_skew_tolerance_ms:
        return anomaly.received_ms
    return anomaly.ts_ms
