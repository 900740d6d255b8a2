"""The alarm state machine per (train, alert_key), as pure functions over `AlarmRecord`.

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
    Severity,
)

__all__ = [
    "OPEN_STATES",
    "AlarmRecord",
    "Outcome",
    "Rules",
    "acknowledge",
    "alarm_id_for",
    "apply_anomaly",
    "clear_if_quiet",
    "reading_time_ms",
]

OPEN_STATES = frozenset({AlarmState.RAISED, AlarmState.ESCALATED, AlarmState.ACKNOWLEDGED})
_SEEN_MAX = 32
"""Recent anomaly ids kept on a record: a redelivery inside this window is recognised."""


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
        **kw,  # type: ignore[arg-type]
    )


def _seen(record: AlarmRecord, anomaly_id: str) -> list[str]:
    return [*record.seen[-(_SEEN_MAX - 1) :], anomaly_id]


def _raise(anomaly: Anomaly, now_ms: int, version: int) -> AlarmRecord:
    return AlarmRecord(
        train=anomaly.train,
        alert_key=anomaly.alert_key,
        alarm_id=alarm_id_for(anomaly.train, anomaly.alert_key, anomaly.anomaly_id),
        state=AlarmState.RAISED,
        severity=anomaly.severity,
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
    )


def apply_anomaly(
    record: AlarmRecord | None, anomaly: Anomaly, now_ms: int, rules: Rules
) -> Outcome:
    """What one anomaly does to the alarm of its (train, alert_key)."""
    if record is not None and anomaly.anomaly_id in record.seen:
        return Outcome(None, duplicate=True, resync=record.trigger_id == anomaly.anomaly_id)
    if record is None or not record.open:
        if record is not None and anomaly.ts_ms <= record.last_ts_ms:
            # Older than what the cleared alarm already covered (a late redelivery or backfill).
            return Outcome(None, duplicate=True)
        raised = _raise(anomaly, now_ms, record.version if record else 0)
        t = _transition(raised, AlarmState.RAISED, None, now_ms, anomaly_id=anomaly.anomaly_id,
                        reason=f"{anomaly.category.value} anomaly, score {anomaly.score:.3g}")
        return Outcome(msgspec.structs.replace(raised, outbox=[t], pending=True), [t])
    if anomaly.severity > record.severity:
        escalated = msgspec.structs.replace(
            record,
            state=AlarmState.ESCALATED,
            severity=anomaly.severity,
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
                        reason=f"severity {record.severity.name} -> {anomaly.severity.name}")
        return Outcome(msgspec.structs.replace(escalated, outbox=[t], pending=True), [t])
    if now_ms - record.last_seen_ms < rules.touch_ms:
        # A repeat inside the touch window changes nothing the lifecycle needs: skip the write.
        return Outcome(None)
    touched = msgspec.structs.replace(
        record,
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
