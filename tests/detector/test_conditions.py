"""One condition, one anomaly: a channel's findings in one frame are merged, with all evidence."""

from __future__ import annotations

from railpulse_detector.conditions import condition_of, merge_conditions
from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Attribution,
    Quality,
    Reading,
    Severity,
)

T0 = 1_700_000_000_000


def bearings(seq: int, hot: float) -> AcceptedFrame:
    """Eight axle boxes near 40 degC; bearing_temp_2 at `hot`."""
    readings = {f"bearing_temp_{i}": 40.0 + 0.5 * i for i in range(1, 9)} | {"bearing_temp_2": hot}
    return AcceptedFrame(
        train="t1",
        seq=seq,
        ts_ms=T0 + 1000 * seq,
        readings={k: Reading(value=v, quality=Quality.GOOD) for k, v in readings.items()},
        speed_kmh=80.0,
    )


def finding(key: str, severity: Severity, kind: AnomalyKind = AnomalyKind.LIMIT,
            channels: tuple[str, ...] = ()) -> Anomaly:
    return Anomaly(
        anomaly_id=f"t1:7:{key}", train="t1", ts_ms=T0, frame_seq=7, category=kind,
        severity=severity, score=3.0 if kind is AnomalyKind.MODEL else 1.0, threshold=1.0,
        alert_key=key, channels=[Attribution(channel=c, contribution=1.0) for c in channels],
        model_version="rcf-1" if kind is AnomalyKind.MODEL else "rules-1", message=f"{key} says so",
    )


def test_a_hot_bearing_past_its_limit_and_its_peers_is_one_anomaly_with_both_evidence() -> None:
    """100 degC: past the operating limit (90, a warning) and 60 degC above the median of its
    peers (beyond the ±20 critical spread): one anomaly about bearing_temp_2, critical, naming
    both rules and what each said."""
    handler = DetectorHandler(DetectorSettings(model_enabled=False))
    [found] = handler.decide([bearings(1, 100.0)])
    [anomaly] = found
    assert anomaly.alert_key == "bearing_temp_2" and anomaly.anomaly_id == "t1:1:bearing_temp_2"
    assert anomaly.severity is Severity.CRITICAL and anomaly.category is AnomalyKind.LIMIT
    assert [(e.source, e.severity) for e in anomaly.evidence] == [
        ("limit", Severity.WARNING), ("peers", Severity.CRITICAL)]
    assert "operating limit 90" in anomaly.evidence[0].message
    assert "median of its 8 peers" in anomaly.evidence[1].message == anomaly.message
    assert [c.channel for c in anomaly.channels] == ["bearing_temp_2"]


def test_findings_on_different_channels_stay_apart_and_the_first_of_equals_leads() -> None:
    merged = merge_conditions([
        finding("limit:bearing_temp_2", Severity.WARNING, channels=("bearing_temp_2",)),
        finding("limit:line_voltage", Severity.CRITICAL, channels=("line_voltage",)),
        finding("model:bearing_temp_2", Severity.WARNING, AnomalyKind.MODEL,
                channels=("bearing_temp_2", "speed")),
    ])
    assert [a.alert_key for a in merged] == ["bearing_temp_2", "line_voltage"]
    bearing, voltage = merged
    # Equal severities: the rule found first leads; the forest's evidence and channels are kept.
    assert (bearing.category, bearing.score, bearing.severity) == (
        AnomalyKind.LIMIT, 1.0, Severity.WARNING)
    assert [(e.source, e.category, e.score) for e in bearing.evidence] == [
        ("limit", AnomalyKind.LIMIT, 1.0), ("model", AnomalyKind.MODEL, 3.0)]
    assert [c.channel for c in bearing.channels] == ["bearing_temp_2", "speed"]
    assert bearing.model_version == "rules-1+rcf-1"
    assert [e.source for e in voltage.evidence] == ["limit"] and voltage.alert_key == "line_voltage"


def test_the_most_severe_finding_leads_whatever_its_order() -> None:
    [merged] = merge_conditions([
        finding("sensor_fault:bearing_temp_2", Severity.WARNING, AnomalyKind.SENSOR_FAULT),
        finding("model:bearing_temp_2", Severity.CRITICAL, AnomalyKind.MODEL),
    ])
    assert (merged.category, merged.severity, merged.score) == (
        AnomalyKind.MODEL, Severity.CRITICAL, 3.0)
    assert merged.message == "model:bearing_temp_2 says so"


def test_a_channel_name_may_hold_a_colon() -> None:
    assert condition_of("limit:pump:a") == ("limit", "pump:a")
    assert condition_of("bearing_temp_2") == ("", "bearing_temp_2")
    [merged] = merge_conditions([finding("pump_a", Severity.WARNING)])
    assert merged.alert_key == "pump_a" and merged.evidence[0].source == "limit"
