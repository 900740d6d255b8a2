"""The read model: frames, anomalies, alarms and the views built from them (no stack needed)."""

from __future__ import annotations

import math

import pytest

from railpulse_console.series import Series
from railpulse_console.state import FleetState, alarm_item, alarm_row
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Attribution,
    Reading,
    Severity,
)

NOW = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> FleetState:
    return FleetState(
        load_catalogue(), window_s=3600, offline_after_s=15, fleet=["train-009"], clock=clock
    )


def _frame(train: str, seq: int, ts_ms: int, **values: float) -> AcceptedFrame:
    return AcceptedFrame(
        train=train, seq=seq, ts_ms=ts_ms, readings={k: Reading(value=v) for k, v in values.items()}
    )


def _anomaly(anomaly_id: str, train: str = "train-001", ts_ms: int = NOW, **kw: object) -> Anomaly:
    fields: dict[str, object] = {
        "anomaly_id": anomaly_id,
        "train": train,
        "ts_ms": ts_ms,
        "frame_seq": 1,
        "category": AnomalyKind.LIMIT,
        "severity": Severity.CRITICAL,
        "score": 2.5,
        "threshold": 1.0,
        "alert_key": "limit:bearing_temp_3",
        "channels": [Attribution(channel="bearing_temp_3", contribution=1.0, value=130.0)],
    }
    fields.update(kw)
    return Anomaly(**fields)  # type: ignore[arg-type]


def _alarm(version: int, state: AlarmState, at_ms: int, **kw: object) -> AlarmTransition:
    fields: dict[str, object] = {
        "alarm_id": "alarm-1",
        "train": "train-001",
        "alert_key": "limit:bearing_temp_3",
        "state": state,
        "severity": Severity.CRITICAL,
        "at_ms": at_ms,
        "version": version,
    }
    fields.update(kw)
    return AlarmTransition(**fields)  # type: ignore[arg-type]


def test_configured_trains_are_listed_offline_before_any_frame(state: FleetState) -> None:
    fleet = state.fleet()
    assert [t.train for t in fleet.trains] == ["train-009"]
    assert fleet.trains[0].online is False and fleet.trains[0].last_frame_age_s is None


def test_frames_make_a_train_online_until_they_stop(state: FleetState, clock: Clock) -> None:
    state.apply_frame(_frame("train-001", 1, NOW - 2000, speed=80.0))
    summary = {t.train: t for t in state.fleet().trains}["train-001"]
    assert summary.online and summary.last_frame_age_s == 2.0 and summary.last_seq == 1
    clock.now += 20_000
    summary = {t.train: t for t in state.fleet().trains}["train-001"]
    assert not summary.online and summary.last_frame_age_s == 22.0


def test_backfilled_frame_does_not_move_last_frame_back(state: FleetState) -> None:
    state.apply_frame(_frame("train-001", 10, NOW - 1000, speed=80.0))
    state.apply_frame(_frame("train-001", 5, NOW - 60_000, speed=70.0))
    summary = state.fleet().trains[0]
    assert summary.last_seq == 10 and summary.frames == 2
    channel = state.channels("train-001")[0]
    assert channel.ts == [NOW - 60_000, NOW - 1000]  # inserted in time order for the plot
    assert channel.values == [70.0, 80.0]


def test_channels_carry_catalogue_bands_and_gaps(state: FleetState) -> None:
    state.apply_frame(_frame("train-001", 1, NOW - 2000, bearing_temp_1=50.0, mystery=1.0))
    state.apply_frame(_frame("train-001", 2, NOW - 1000, bearing_temp_1=51.0))
    by_name = {c.name: c for c in state.channels("train-001")}
    bearing = by_name["bearing_temp_1"]
    assert bearing.unit == "degC"
    assert bearing.operating == (-40.0, 90.0) and bearing.critical == (-45.0, 120.0)
    assert by_name["mystery"].operating is None and by_name["mystery"].group == "uncatalogued"
    assert by_name["mystery"].values == [1.0, None]  # missing reading → a gap, not a zero
    assert next(iter(by_name)) == "bearing_temp_1"  # catalogue order first


def test_anomaly_is_deduplicated_and_notified_once(state: FleetState) -> None:
    seen: list[tuple[str, str]] = []
    state.subscribe(lambda kind, item: seen.append((kind, item.id)))
    assert state.apply_anomaly(_anomaly("a1")) is not None
    assert state.apply_anomaly(_anomaly("a1")) is None  # a replay
    assert seen == [("anomaly", "a1")]
    item = state.alerts()[0]
    assert (item.score, item.threshold, item.severity_name) == (2.5, 1.0, "critical")
    assert item.channels[0].channel == "bearing_temp_3"
    assert state.fleet().trains[0].anomalies_1h == 1


def test_alert_feed_is_newest_first_and_filterable(state: FleetState) -> None:
    state.apply_anomaly(_anomaly("a1", train="train-001", severity=Severity.WARNING))
    state.apply_anomaly(
        _anomaly("a2", train="train-002", category=AnomalyKind.MODEL, alert_key="model:speed")
    )
    state.apply_alarm(_alarm(1, AlarmState.RAISED, NOW))
    state.apply_anomaly(_anomaly("a0", train="train-003", ts_ms=NOW - 60_000, severity=Severity.INFO))
    assert [i.id for i in state.alerts()] == ["alarm-1:1", "a2", "a1", "a0"]
    assert [i.id for i in state.alerts(train="train-001", kind="anomaly")] == ["a1"]
    assert [i.id for i in state.alerts(min_severity=3, kind="anomaly")] == ["a2"]
    assert [i.id for i in state.alerts(category="model")] == ["a2"]
    assert len(state.alerts(limit=1)) == 1


def test_alarm_lifecycle_gives_time_to_acknowledge_and_clear(state: FleetState) -> None:
    state.apply_alarm(_alarm(1, AlarmState.RAISED, NOW))
    assert state.fleet().trains[0].open_alarms["critical"] == 1
    state.apply_alarm(_alarm(3, AlarmState.CLEARED, NOW + 90_000))
    state.apply_alarm(_alarm(2, AlarmState.ACKNOWLEDGED, NOW + 12_000))  # arrives late
    [alarm] = state.alarms("train-001")
    row = alarm_row(alarm)
    assert row["state"] == "cleared"  # the newest version's state stays
    assert row["time_to_ack_ms"] == 12_000  # but the late step's time is kept
    assert row["time_to_clear_ms"] == 90_000
    assert state.fleet().trains[0].open_alarms["critical"] == 0


def test_alarm_versions_in_order(state: FleetState) -> None:
    state.apply_alarm(_alarm(1, AlarmState.RAISED, NOW))
    state.apply_alarm(_alarm(2, AlarmState.ACKNOWLEDGED, NOW + 12_000))
    assert state.apply_alarm(_alarm(2, AlarmState.ACKNOWLEDGED, NOW + 12_000)) is None
    [alarm] = state.alarms("train-001")
    assert (alarm.state, alarm.time_to_ack_ms, alarm.time_to_clear_ms) == ("acknowledged", 12_000, None)
    assert state.fleet().trains[0].open_alarms["critical"] == 1


def test_warehouse_alarms_fill_in_without_overriding_the_stream(state: FleetState) -> None:
    state.apply_alarm(_alarm(1, AlarmState.RAISED, NOW))
    older = [
        _alarm(1, AlarmState.RAISED, NOW - 600_000, alarm_id="old"),
        _alarm(2, AlarmState.CLEARED, NOW - 500_000, alarm_id="old"),
        _alarm(1, AlarmState.RAISED, NOW - 999, alarm_id="alarm-1"),  # known: stream wins
    ]
    alarms = state.alarms("train-001", older)
    assert [(a.alarm_id, a.raised_ms) for a in alarms] == [("alarm-1", NOW), ("old", NOW - 600_000)]
    assert alarms[1].time_to_clear_ms == 100_000


def test_warehouse_points_fill_the_window_before_the_stream(state: FleetState) -> None:
    state.apply_frame(_frame("train-001", 1, NOW - 1000, speed=80.0))
    older = [(NOW - 7_200_000, {"speed": 1.0}), (NOW - 600_000, {"speed": 60.0}),
             (NOW - 1000, {"speed": 99.0})]
    [speed] = state.channels("train-001", older=older)
    assert speed.ts == [NOW - 600_000, NOW - 1000]  # outside the window and overlap dropped
    assert speed.values == [60.0, 80.0]


def test_frame_rate(state: FleetState, clock: Clock) -> None:
    for i in range(50):
        clock.now = NOW + i * 200
        state.apply_frame(_frame("train-001", i, clock.now, speed=1.0))
    assert state.frame_rate.per_second(clock.now) == pytest.approx(5.0, rel=0.1)
    # Frames read late (the catch-up at boot) count at the time ingest accepted them.
    for i in range(100):
        old = NOW - 600_000 + i
        state.apply_frame(
            AcceptedFrame(train="train-002", seq=i, ts_ms=old, ingested_ms=old, readings={})
        )
    assert state.frame_rate.per_second(clock.now) == pytest.approx(5.0, rel=0.1)


def test_series_window_is_bounded_and_thinned() -> None:
    series = Series(max_points=100)
    for i in range(500):
        series.add(i * 1000, {"a": float(i)} if i % 2 else {"a": float(i), "b": 1.0})
    assert 100 <= len(series) <= 110  # capped, trimmed in batches
    ts, values = series.window(0, max_points=10)
    assert len(ts) <= 11 and ts[-1] == 499_000  # thinned, the newest point kept
    assert values["a"][-1] == 499.0 and values["b"][-1] is None
    series.prune(480_000)
    assert series.ts[0] == 480_000
    new_ts, new = series.since(497_000)
    assert new_ts == [498_000, 499_000] and new["a"] == [498.0, 499.0]
    assert all(math.isnan(v) for v in series.cols["b"][1::2])


def test_an_alarm_keyed_by_its_channel_takes_its_category_from_the_transition() -> None:
    """Alarms are keyed by the condition (`bearing_temp_2`); the category comes with the
    transition, and from an older notifier's `<category>:` key prefix."""
    keyed = _alarm(1, AlarmState.RAISED, NOW, alert_key="bearing_temp_2",
                   category=AnomalyKind.LIMIT, evidence=["limit", "peers"])
    assert alarm_item(keyed, NOW).category == "limit"
    assert alarm_item(keyed, NOW).alert_key == "bearing_temp_2"
    legacy = _alarm(1, AlarmState.RAISED, NOW, alert_key="sensor_fault:humidity")
    assert alarm_item(legacy, NOW).category == "sensor_fault"
