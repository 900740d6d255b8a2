"""The alarm state machine and the shadow document, without the stack."""

from __future__ import annotations

import json

import msgspec
from ntkit import anomaly

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_notifier.lifecycle import (
    Rules,
    acknowledge,
    apply_anomaly,
    clear_if_quiet,
    reading_time_ms,
)
from railpulse_notifier.shadow import MAX_SHADOW_BYTES, build_desired
from railpulse_shared.contracts import (
    AcceptedFrame,
    AlarmState,
    Anomaly,
    AnomalyKind,
    Evidence,
    Quality,
    Reading,
    Severity,
)

RULES = Rules(clear_after_ms=60_000, touch_ms=6_000)
T0 = 1_800_000_000_000


def _stored(outcome):  # type: ignore[no-untyped-def]
    """As the store returns a written record: version bumped."""
    return msgspec.structs.replace(outcome.record, version=outcome.record.version + 1)


def test_first_anomaly_raises_repeats_update_and_a_rise_escalates() -> None:
    first = anomaly("t1", severity=Severity.WARNING, ts_ms=T0)
    raised = apply_anomaly(None, first, T0, RULES)
    assert [t.state for t in raised.transitions] == [AlarmState.RAISED]
    record = _stored(raised)

    repeat = apply_anomaly(record, anomaly("t1", severity=Severity.INFO, ts_ms=T0 + 1), T0 + 1000,
                           RULES)
    assert repeat.record is None and not repeat.transitions  # inside the touch window: no write

    later = apply_anomaly(record, anomaly("t1", ts_ms=T0 + 2), T0 + 7000, RULES)
    assert later.record is not None and not later.transitions and later.record.count == 2

    rise = apply_anomaly(record, anomaly("t1", severity=Severity.CRITICAL, ts_ms=T0 + 3), T0 + 8000,
                         RULES)
    [t] = rise.transitions
    assert (t.state, t.previous, t.severity, t.version) == (
        AlarmState.ESCALATED, AlarmState.RAISED, Severity.CRITICAL, 2)
    assert rise.record is not None and rise.record.alarm_id == record.alarm_id


def test_redelivery_is_recognised_and_severity_never_falls_while_open() -> None:
    first = anomaly("t1", severity=Severity.CRITICAL, ts_ms=T0)
    record = _stored(apply_anomaly(None, first, T0, RULES))
    again = apply_anomaly(record, first, T0 + 10_000, RULES)
    assert again.duplicate and again.resync and again.record is None
    lower = apply_anomaly(record, anomaly("t1", severity=Severity.INFO, ts_ms=T0 + 1), T0 + 10_000,
                          RULES)
    assert lower.record is not None and lower.record.severity == Severity.CRITICAL


def test_ack_needs_a_report_after_the_latest_raise_or_escalation() -> None:
    record = _stored(apply_anomaly(None, anomaly("t1", ts_ms=T0), T0, RULES))
    assert acknowledge(record, T0 - 5000, T0 + 1).record is None  # a stale report
    acked = acknowledge(record, T0 + 500, T0 + 600)
    assert [t.state for t in acked.transitions] == [AlarmState.ACKNOWLEDGED]
    record = _stored(acked)
    rise = apply_anomaly(record, anomaly("t1", severity=Severity.CRITICAL, ts_ms=T0 + 1),
                         T0 + 5000, RULES)
    [t] = rise.transitions
    assert (t.state, t.previous) == (AlarmState.ESCALATED, AlarmState.ACKNOWLEDGED)
    record = _stored(rise)
    assert acknowledge(record, T0 + 600, T0 + 6000).record is None  # the old ack does not count
    assert acknowledge(record, T0 + 5000, T0 + 6000).transitions


def test_hysteresis_clears_only_after_a_quiet_period_and_flapping_stays_one_alarm() -> None:
    record = _stored(apply_anomaly(None, anomaly("t1", ts_ms=T0), T0, RULES))
    now = T0
    for i in range(1, 10):  # the signal flaps every 20 s: never quiet for 60 s
        now = T0 + i * 20_000
        assert clear_if_quiet(record, now, RULES).record is None
        outcome = apply_anomaly(record, anomaly("t1", ts_ms=now), now, RULES)
        assert not outcome.transitions
        record = _stored(outcome)
    cleared = clear_if_quiet(record, now + 60_000, RULES)
    assert [t.state for t in cleared.transitions] == [AlarmState.CLEARED]
    record = _stored(cleared)
    # An anomaly from before the clear (late redelivery) does not re-open it; a new one does.
    assert apply_anomaly(record, anomaly("t1", ts_ms=now - 1), now + 61_000, RULES).record is None
    reopened = apply_anomaly(record, anomaly("t1", ts_ms=now + 61_000), now + 61_000, RULES)
    [t] = reopened.transitions
    assert t.state is AlarmState.RAISED and t.alarm_id != record.alarm_id


def test_desired_is_most_severe_first_and_bounded_with_a_count() -> None:
    records = []
    for i in range(200):
        sev = Severity.CRITICAL if i % 7 == 0 else Severity.WARNING
        a = anomaly("t1", f"limit:channel_{i:03d}", sev, ts_ms=T0 + i)
        records.append(_stored(apply_anomaly(None, a, T0 + i, RULES)))
    desired = build_desired(records, 6144)
    assert len(json.dumps(desired, separators=(",", ":"))) <= 6144 < MAX_SHADOW_BYTES
    assert desired["omitted"] == 200 - len(desired["open"]) > 0
    sev = [a["severity"] for a in desired["open"]]
    assert sev == sorted(sev, reverse=True) and sev.count(3) == min(29, len(sev))  # 29 critical
    assert build_desired([], 6144) == {"open": [], "omitted": 0}


def test_a_skewed_train_clock_changes_no_alarm_and_no_latency() -> None:
    """A train clock minutes ahead or behind: the alarm opens at once and clears after a quiet
    period of wall time, as for a true clock; latency is measured from the IoT receipt time."""
    for skew_ms in (4 * 60_000, -10 * 60_000):
        a = msgspec.structs.replace(anomaly("t1", ts_ms=T0 + skew_ms), received_ms=T0)
        raised = apply_anomaly(None, a, T0 + 200, RULES)
        assert raised.record is not None and raised.record.state is AlarmState.RAISED
        record = _stored(raised)
        assert clear_if_quiet(record, T0 + 200 + RULES.clear_after_ms - 1, RULES).record is None
        cleared = clear_if_quiet(record, T0 + 200 + RULES.clear_after_ms, RULES).record
        assert cleared is not None and cleared.state is AlarmState.CLEARED
        assert reading_time_ms(a, 30_000) == T0
    live = msgspec.structs.replace(anomaly("t1", ts_ms=T0 - 40), received_ms=T0)
    assert reading_time_ms(live, 30_000) == T0 - 40  # a true clock: from the sensor time
    unknown = anomaly("t1", ts_ms=T0 - 3_600_000)  # no receipt time known
    assert reading_time_ms(unknown, 30_000) == T0 - 3_600_000


def test_a_hot_bearing_seen_by_its_limit_and_its_peers_is_one_alarm_through_its_life() -> None:
    """The detector's own decisions on a bearing at 100 degC for a minute (past its operating
    limit: warning; 60 degC above its peers: critical), then calm: one alarm about bearing_temp_2,
    critical, carrying both rules' evidence, raised once, acknowledged once, cleared once."""
    def frame(seq: int, hot: float) -> AcceptedFrame:
        values = {f"bearing_temp_{i}": 40.0 + 0.5 * i for i in range(1, 9)} | {"bearing_temp_2": hot}
        return AcceptedFrame(train="t1", seq=seq, ts_ms=T0 + 1000 * seq, speed_kmh=80.0,
                             readings={k: Reading(value=v, quality=Quality.GOOD)
                                       for k, v in values.items()})

    detector = DetectorHandler(DetectorSettings(model_enabled=False))
    decided = detector.decide([frame(s, 100.0 if s <= 60 else 45.0) for s in range(1, 121)])
    anomalies = [a for found in decided for a in found]
    assert {a.alert_key for a in anomalies} == {"bearing_temp_2"}  # re-asserted every 10 s

    records: dict[str, object] = {}
    transitions = []
    for a in anomalies:
        now = a.ts_ms  # the notifier's wall clock, here in step with the train's
        outcome = apply_anomaly(records.get(a.alert_key), a, now, RULES)  # type: ignore[arg-type]
        transitions += outcome.transitions
        if outcome.record is not None:
            records[a.alert_key] = _stored(outcome)
    [record] = records.values()
    assert [t.state for t in transitions] == [AlarmState.RAISED]  # notified once
    assert record.severity is Severity.CRITICAL and record.alert_key == "bearing_temp_2"
    assert [(e.source, e.severity) for e in record.evidence] == [
        ("limit", Severity.WARNING), ("peers", Severity.CRITICAL)]
    assert transitions[0].evidence == ["limit", "peers"] and transitions[0].category == "limit"
    [shadow] = build_desired([record], 6144)["open"]
    assert shadow["alert_key"] == "bearing_temp_2" and shadow["evidence"] == ["limit", "peers"]

    acked = acknowledge(record, T0 + 30_000, T0 + 30_500)
    assert [t.state for t in acked.transitions] == [AlarmState.ACKNOWLEDGED]
    record = _stored(acked)
    assert acknowledge(record, T0 + 31_000, T0 + 31_500).record is None  # acknowledged once

    assert clear_if_quiet(record, T0 + 60_000 + 30_000, RULES).record is None  # still fresh
    cleared = clear_if_quiet(record, T0 + 60_000 + RULES.clear_after_ms, RULES)
    assert [t.state for t in cleared.transitions] == [AlarmState.CLEARED]
    assert clear_if_quiet(_stored(cleared), T0 + 200_000, RULES).record is None  # cleared once


def test_evidence_from_a_later_frame_joins_the_alarm_and_the_highest_severity_wins() -> None:
    """Peers first (a warning), the limit 20 s later (critical), the forest later still (a
    warning): one alarm, escalated once, evidence from all three; the new warning is written
    (the crew's alert lists it) without a transition to acknowledge."""
    def merged(source: str, severity: Severity, ts_ms: int) -> Anomaly:
        return msgspec.structs.replace(
            anomaly("t1", "bearing_temp_2", severity, ts_ms=ts_ms),
            evidence=[Evidence(source=source, category=AnomalyKind.LIMIT, severity=severity,
                               message=f"{source} says so")])

    record = _stored(apply_anomaly(None, merged("peers", Severity.WARNING, T0), T0, RULES))
    rise = apply_anomaly(record, merged("limit", Severity.CRITICAL, T0 + 20_000), T0 + 20_000,
                         RULES)
    assert [t.state for t in rise.transitions] == [AlarmState.ESCALATED]
    record = _stored(rise)
    forest = apply_anomaly(record, merged("model", Severity.WARNING, T0 + 21_000), T0 + 21_000,
                           RULES)  # inside the touch window, but new evidence: written
    assert forest.record is not None and not forest.transitions
    record = _stored(forest)
    assert record.severity is Severity.CRITICAL and record.state is AlarmState.ESCALATED
    assert [(e.source, e.severity) for e in record.evidence] == [
        ("peers", Severity.WARNING), ("limit", Severity.CRITICAL), ("model", Severity.WARNING)]


def test_an_older_detectors_anomaly_is_its_own_evidence() -> None:
    """Anomalies keyed by rule (`limit:bearing_temp_c`, no evidence), in flight while the
    detector is upgraded: an alarm under that key as before, its rule as its evidence."""
    outcome = apply_anomaly(None, anomaly("t1", "limit:bearing_temp_c", Severity.WARNING), T0,
                            RULES)
    assert outcome.record is not None and outcome.record.alert_key == "limit:bearing_temp_c"
    assert [(e.source, e.severity) for e in outcome.record.evidence] == [("limit", Severity.WARNING)]
