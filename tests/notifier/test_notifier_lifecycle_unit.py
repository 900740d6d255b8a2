"""The alarm state machine and the shadow document, without the stack."""

from __future__ import annotations

import json

import msgspec
from ntkit import anomaly

from railpulse_notifier.lifecycle import (
    Rules,
    acknowledge,
    apply_anomaly,
    clear_if_quiet,
    reading_time_ms,
)
from railpulse_notifier.shadow import MAX_SHADOW_BYTES, build_desired
from railpulse_shared.contracts import AlarmState, Severity

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
    assert sev == sorted(sev, reverse=True) and sev.count(3) == 29
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
