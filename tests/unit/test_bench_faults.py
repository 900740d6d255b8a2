"""bench-faults' core: the fleet through the detector's own decisions, and its accounting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's `bench` package

from bench.faults import ShardResult, ShardSpec, _qualify, fault_plan, run, run_shard, score
from railpulse_edge.sim.scenario import Fault

BASE_MS = 1_000_000_000_000


def _truth(
    train: str, kind: str, channel: str, channels: list[str], start_s: int, **more: int
) -> dict[str, object]:
    return {
        "train": train,
        "fault": kind,
        "channel": channel,
        "channels": channels,
        "at_s": start_s,
        "start_ms": BASE_MS + start_s * 1000,
        **more,
    }


def test_accounting_counts_a_caught_fault_its_delay_and_false_alerts_per_healthy_train_day() -> (
    None
):
    faulty = ShardResult(
        names=("t1",),
        truth=[
            _truth(
                "t1",
                "bearing_degradation",
                "bearing_temp_3",
                ["bearing_temp_3", "vibration_2"],
                100,
            ),
            {
                "train": "t1",
                "fault": "bearing_degradation",
                "channel": "bearing_temp_3",
                "critical_ms": BASE_MS + 900_000,
            },
        ],
        anomalies=[
            (
                "t1",
                50.0,
                "limit:bearing_temp_3",
                "limit",
                "warning",
                ("bearing_temp_3",),
            ),  # before onset
            (
                "t1",
                160.0,
                "model:vibration_2",
                "model",
                "warning",
                ("vibration_2", "speed"),
            ),  # caught
            ("t1", 170.0, "model:vibration_2", "model", "warning", ("vibration_2",)),  # same alert
            ("t1", 400.0, "limit:cabin_temp_1", "limit", "warning", ("cabin_temp_1",)),  # unrelated
        ],
        base_ms=BASE_MS,
    )
    healthy = ShardResult(
        names=("t2",),
        truth=[],
        anomalies=[
            ("t2", 10.0, "limit:line_voltage", "limit", "critical", ("line_voltage",)),
            ("t2", 200.0, "limit:line_voltage", "limit", "critical", ("line_voltage",)),  # repeat
            (
                "t2",
                900.0,
                "limit:line_voltage",
                "limit",
                "critical",
                ("line_voltage",),
            ),  # new alert
        ],
        base_ms=BASE_MS,
    )
    report = score(
        [faulty, healthy],
        {("t1", "bearing_degradation", "bearing_temp_3"): 1.0},
        hours=12.0,
        clear_after_s=300.0,
    )
    bearing = report["per_kind"]["bearing_degradation"]
    assert (bearing["faults"], bearing["recall"], bearing["delay_p50_s"]) == (1, 1.0, 60.0)
    assert bearing["before_critical"] == 1.0 and bearing["reached_critical"] == 1
    assert report["false_alerts_healthy"] == 2  # one healthy train, two alerts, half a day
    assert report["false_alerts_per_train_day"] == 4.0
    assert report["false_alerts_faulty_trains"] == 2  # before onset; another channel
    assert report["alerts_by_kind"]["model"] == {"true": 1, "false_healthy": 0, "false_faulty": 0}


def test_a_spike_on_a_simulated_train_is_caught_by_the_detectors_own_rules() -> None:
    spec = ShardSpec(
        seed=1,
        shard=0,
        names=("train-001", "train-002"),
        hours=0.25,
        day=False,
        faults=(
            Fault(train=0, kind="spike", channel="bearing_temp_3", at_s=300.0, magnitude=150.0),
        ),
    )
    result = run_shard(spec)
    assert result.frames == 2 * 900
    report = score([result], {("train-001", "spike", "bearing_temp_3"): 1.0}, 0.25, 300.0)
    spike = report["per_kind"]["spike"]
    assert (
        spike["recall"] == 1.0 and spike["delay_p50_s"] is not None and spike["delay_p50_s"] <= 1.0
    )


def test_same_seed_same_json() -> None:
    """The whole run (plan, day timetable, shards, accounting) on a tiny fleet, twice."""
    assert json.dumps(run([5], trains=2, hours=1.25, workers=1)) == json.dumps(
        run([5], trains=2, hours=1.25, workers=1)
    )


def test_same_seed_same_shard() -> None:
    spec = ShardSpec(
        seed=3,
        shard=0,
        names=("train-001", "train-002"),
        hours=0.1,
        day=False,
        faults=(Fault(train=1, kind="hvac_failure", at_s=60.0),),
    )
    one, two = run_shard(spec), run_shard(spec)
    assert (one.truth, one.anomalies, one.frames) == (two.truth, two.anomalies, two.frames)
    assert fault_plan(101, 20, 24.0) == fault_plan(101, 20, 24.0)


def test_every_kind_is_planned_at_its_default_severity_on_some_trains_and_not_others() -> None:
    faults, severity = fault_plan(101, 20, 24.0)
    defaults = {f.kind for n, f in enumerate(faults) if severity[n] == 1.0}
    assert defaults >= {
        "bearing_degradation",
        "air_leak",
        "slow_door",
        "wheel_flat",
        "pantograph_fault",
        "hvac_failure",
        "stuck_sensor",
    }
    assert len(defaults) == 11
    faulty = {f.train for f in faults}
    assert 0 < len(faulty) < 20
    assert all(2 * 3600 <= f.at_s <= 12 * 3600 for f in faults)


def test_an_alert_raised_before_the_onset_does_not_detect_the_fault() -> None:
    """A model event open since before the fault, whose later re-assertions happen to name the
    fault's channel, tells the crew nothing new: not a detection, and a false alert."""
    result = ShardResult(
        names=("t1",),
        truth=[_truth("t1", "wheel_flat", "vibration_2", ["vibration_2"], 100)],
        anomalies=[
            ("t1", 90.0, "model:speed", "model", "warning", ("speed",)),
            ("t1", 100.0, "model:speed", "model", "warning", ("vibration_2", "speed")),
            ("t1", 110.0, "model:speed", "model", "warning", ("vibration_2",)),
        ],
        base_ms=BASE_MS,
    )
    report = score(
        [result], {("t1", "wheel_flat", "vibration_2"): 1.0}, hours=1.0, clear_after_s=300.0
    )
    assert report["per_kind"]["wheel_flat"]["recall"] == 0.0
    assert report["false_alerts_faulty_trains"] == 1


def test_a_sudden_fault_in_a_tunnel_is_timed_from_onset_and_from_when_its_frames_were_sent() -> (
    None
):
    """Two arcs, each caught 3 s after the platform had its frame: one in the open (within 10 s
    either way), one that began 20 s before the train left a tunnel (late from its onset, within
    10 s of its data)."""
    result = ShardResult(
        names=("t1", "t2"),
        truth=[
            _truth("t1", "pantograph_fault", "line_voltage", ["line_voltage"], 100),
            _truth("t2", "pantograph_fault", "line_voltage", ["line_voltage"], 100),
        ],
        anomalies=[
            ("t1", 103.0, "spike:line_voltage", "limit", "warning", ("line_voltage",)),
            ("t2", 123.0, "spike:line_voltage", "limit", "warning", ("line_voltage",)),
        ],
        base_ms=BASE_MS,
    )
    for t in range(90, 120):  # t2 in a tunnel from 90 s; out, and its spool sent, at 120 s
        result.hold("t2", float(t))
    result.send("t2", 120.0)
    severities = {(t, "pantograph_fault", "line_voltage"): 1.0 for t in ("t1", "t2")}
    panto = score([result], severities, hours=1.0, clear_after_s=300.0)["per_kind"][
        "pantograph_fault"
    ]
    assert panto["recall"] == 1.0
    assert panto["within_10s"] == 0.5
    assert panto["within_10s_of_data"] == 1.0
    assert panto["held_on_train"] == 1
    assert result.reached_platform("t2", 100.0) == 120.0
    assert result.reached_platform("t2", 120.5) == 120.5  # after the tunnel: live
    assert result.reached_platform("t1", 100.0) == 100.0


def test_a_run_over_seeds_keeps_when_each_train_held_its_frames() -> None:
    """The accounting qualifies train names by seed (`101/train-005`): what the train held goes
    with them, or no fault would ever count as held."""
    result = ShardResult(names=("t2",), truth=[], anomalies=[], base_ms=BASE_MS)
    for t in range(90, 120):
        result.hold("t2", float(t))
    result.send("t2", 120.0)
    qualified = _qualify(result, 101)
    assert qualified.reached_platform("101/t2", 100.0) == 120.0
    assert qualified.reached_platform("t2", 100.0) == 100.0


def test_the_demo_catches_its_seven_faults_in_five_minutes_with_no_false_alert() -> None:
    # `make demo` in process: edge/scenarios/demo.toml, 20 trains, 300 s, the stack's two shards.
    from bench.faults import kinesis_shard, scenario_report

    demo = Path(__file__).resolve().parents[2] / "edge" / "scenarios" / "demo.toml"
    report = scenario_report(str(demo), trains=20, seconds=300, shards=2)
    assert report["faults"] == 7 and report["recall"] == 1.0, report["delays_s"]
    assert report["false_alerts_healthy"] == 0 and report["false_alerts_faulty_trains"] == 0
    assert report["delays_s"]["train-015/hvac_failure"] < 180  # the fleet judge, not the limits
    assert sorted(report["shard_trains"]) == [6, 14]
    assert kinesis_shard("train-015", 2) == 0 and kinesis_shard("train-002", 2) == 1
