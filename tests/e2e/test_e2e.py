"""End to end through the local stack and the four services, each its own process (as on Fargate).

One module-scoped fixture starts ingest, detector, notifier and archiver once (like `railpulse
demo`, with the archiver flushing every 5 s) and waits until every KCL consumer renews its leases;
the tests then publish over MQTT with per-device certificates and wait, with deadlines, for the
end states: rows in the lake (DuckDB over S3), rejects in SQS, alerts in the device shadows, rows
in the warehouse (PostgreSQL).

The seed-003 devices and their payloads are fixed (the acceptance table of docs/design.md), so on a stack that has
seen them before their rows and alarms may already exist: those checks are on sets (the row and
alarm each case must end as), and case 5's reject is matched by its receipt time. The trains of
this module are named per run, so their frames are judged exactly: once each in the lake and in
the warehouse.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stackrun import (
    SERVICES,
    Running,
    client,
    lake_rows,
    mqtt_links,
    open_alerts,
    suite_services,
    wait_for,
)

from railpulse_edge.fleet import publish_generic
from railpulse_edge.frames import build_frame
from railpulse_edge.sim.generic import GENERIC_CASES
from railpulse_edge.sim.model import CHANNELS as SIM_CHANNELS
from railpulse_edge.sim.model import FleetModel
from railpulse_edge.sim.scenario import Fault, Scenario, ScenarioRunner
from railpulse_shared.codec import decode_wire
from railpulse_shared.contracts import RejectedRecord

pytestmark = pytest.mark.stack

SENSORS = sorted({device for device, _ in GENERIC_CASES})
GOOD, INVALID = "good", "invalid"
# (device, seq = sensor time in ms, channel) -> (value, quality): what the lake must hold.
EXPECTED_ROWS: dict[tuple[str, int, str], tuple[float, str]] = {
    ("sensor-101", 1700100000000, "temperature"): (22.0, GOOD),
    ("sensor-101", 1700100000000, "humidity"): (55.0, GOOD),
    ("sensor-102", 1700100500000, "temperature"): (75.0, GOOD),
    ("sensor-102", 1700100500000, "humidity"): (40.0, GOOD),
    ("sensor-103", 1700101000000, "temperature"): (21.0, GOOD),
    ("sensor-103", 1700101000000, "humidity"): (10.0, GOOD),
    ("sensor-104", 1700101500000, "temperature"): (30.0, GOOD),  # case 4: no humidity, no error
    ("sensor-105", 1700103000000, "temperature"): (150.0, GOOD),  # case 6: kept, never noise
    ("sensor-105", 1700103000000, "humidity"): (30.0, GOOD),
    ("sensor-106", 1700103500000, "temperature"): (-10.0, GOOD),
    ("sensor-106", 1700103500000, "humidity"): (-5.0, INVALID),  # case 7: kept, flagged
    ("sensor-107", 1700104000000, "temperature"): (25.0, GOOD),
    ("sensor-107", 1700104000000, "humidity"): (65.0, GOOD),
    ("sensor-107", 1700104000000, "pressure"): (1012.0, GOOD),  # case 8: new field kept
}
# device -> (alert_key: the channel, category, minimum severity) that must be open in its shadow.
EXPECTED_ALERTS = {
    "sensor-102": ("temperature", "limit", 2),  # case 2: high temperature
    "sensor-103": ("humidity", "limit", 2),  # case 3: low humidity
    "sensor-105": ("temperature", "limit", 3),  # case 6: critical
    "sensor-106": ("humidity", "sensor_fault", 2),  # case 7: sensor fault
}
QUIET_SENSORS = ("sensor-101", "sensor-104", "sensor-107")

RUN = uuid.uuid4().hex[:8]
TRAINS = [f"e2e-{RUN}-{i}" for i in range(3)]
HOT, CALM = TRAINS[0], TRAINS[1:]
# The fleet simulator's degrading bearing (seed and rate fixed, so the readings are too): the
# hot box strays +10 degC from its peers at frame 320 and its bogie's vibration passes the
# operating limit at 286, both long before any absolute bearing limit; 380 frames stay inside
# the forest's warm-up (400), so nothing but the fault can raise an alarm.
WORN, SOUND = f"e2e-{RUN}-worn", f"e2e-{RUN}-sound"
WORN_FRAMES, WORN_SEED, WORN_RATE = 380, 1, 600.0
FRAMES = 10
HOT_SEQ = 6
CHANNELS = 12  # readings per frame below


def _readings(train: str, seq: int) -> dict[str, float]:
    readings = {f"bearing_temp_{i}": 40.0 + i + 0.1 * seq for i in range(1, 9)}
    readings |= {f"motor_current_{i}": 300.0 + 5 * i + seq for i in range(1, 5)}
    if train == HOT and seq == HOT_SEQ:
        readings["bearing_temp_3"] = 130.0  # past the critical limit (120 degC)
    return readings


@pytest.fixture(scope="module")
def services(stack: dict[str, str]) -> Iterator[Running]:
    overrides = {name: {"RAILPULSE_BUFFER_MAX_AGE_S": "5"} for name in SERVICES}
    with suite_services(stack, "e2e", RUN, [*SENSORS, *TRAINS, WORN, SOUND], overrides) as running:
        yield running


@dataclass(frozen=True)
class GenericRun:
    since_ms: int
    """Epoch ms before publishing."""
    judged_before: bool
    """This stack's lake already held the seed-003 alerts before this run published."""


WANT_ALERTS = {(device, key) for device, (key, _, _) in EXPECTED_ALERTS.items()}


def _sensor_alerts(env: dict[str, str]) -> set[tuple[str, str]]:
    return {(t, k) for t, k in lake_rows(
        env, "SELECT DISTINCT train, alert_key FROM alerts WHERE train IN (SELECT unnest(?))",
        [SENSORS])}


@pytest.fixture(scope="module")
def generic_sent(services: Running) -> GenericRun:
    """The eight seed-003 payloads, each published by its own device's certificate."""
    env = services.env
    judged_before = _sensor_alerts(env) >= WANT_ALERTS
    since = int(time.time() * 1000)
    sent = asyncio.run(publish_generic(env["RAILPULSE_MQTT_HOST"], int(env["RAILPULSE_MQTT_PORT"]),
                                       Path(env["RAILPULSE_CA_FILE"]), Path(env["RAILPULSE_CERTS_DIR"])))
    assert sent == len(GENERIC_CASES) == 8
    return GenericRun(since, judged_before)


async def _publish(env: dict[str, str], train: str, frames: list[bytes]) -> None:
    """Publish `frames` in order as `train` (its own certificate), each acknowledged (QoS 1)."""
    async with mqtt_links(env, [train]) as links:
        for body in frames:
            await asyncio.wait_for(links[train].publish(f"trains/{train}/telemetry", body).done, 15)


async def _publish_train(env: dict[str, str], train: str, start_ms: int) -> None:
    await _publish(env, train, [build_frame(train, seq, start_ms + seq * 1000, _readings(train, seq))
                                for seq in range(1, FRAMES + 1)])


@pytest.fixture(scope="module")
def trains_sent(services: Running) -> int:
    """FRAMES frames from each of three trains (own certificates); the hot one carries a
    critical bearing temperature in frame HOT_SEQ. Returns the first frame's time (epoch ms)."""
    start_ms = int(time.time() * 1000) - (FRAMES + 1) * 1000

    async def all_trains() -> None:
        await asyncio.gather(*(_publish_train(services.env, t, start_ms) for t in TRAINS))

    asyncio.run(all_trains())
    return start_ms


def _sensor_rows(env: dict[str, str]) -> list[tuple[Any, ...]]:
    return lake_rows(env, "SELECT train, seq, channel, value, quality FROM telemetry "
                          "WHERE train IN (SELECT unnest(?))", [SENSORS])


def test_seed003_malformed_payload_lands_in_rejects_with_its_raw_bytes(
    services: Running, generic_sent: GenericRun
) -> None:
    env = services.env
    sqs = client(env, "sqs")
    url = env["RAILPULSE_QUEUE_REJECTS_URL"]

    def find() -> RejectedRecord | None:
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   VisibilityTimeout=5, MessageAttributeNames=["All"])
        for message in resp.get("Messages", []):
            received = int(message.get("MessageAttributes", {}).get("received_ms", {})
                           .get("StringValue", "0"))
            record = decode_wire(message["Body"].encode(), RejectedRecord)
            if record.device == "sensor-105" and received >= generic_sent.since_ms - 1000:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return record
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)
        return None

    record = wait_for(find, 60, "case 5 in the rejects queue", every=0.2, supervisor=services.supervisor)
    assert record.reason.value == "malformed_json"
    assert record.raw == b"Invalid JSON Data"
    assert record.raw_size == len(b"Invalid JSON Data")


def test_seed003_alerts_reach_each_devices_shadow(services: Running, generic_sent: GenericRun) -> None:
    env = services.env

    def delivered() -> dict[str, list[dict[str, Any]]] | None:
        shadows = {device: open_alerts(env, device) for device in EXPECTED_ALERTS}
        for device, (key, category, severity) in EXPECTED_ALERTS.items():
            if not any(a["alert_key"] == key and a["category"] == category and a["severity"] >= severity
                       for a in shadows[device]):
                return None
        return shadows

    if generic_sent.judged_before:
        # This stack judged these exact readings before: an anomaly's id is (device, sensor time,
        # condition), so the republication is the same anomaly and must raise no new alarm (the
        # first one may have cleared since: no anomaly for the notifier's quiet period). What
        # must hold is that each alarm was raised, and that the shadow lists those still open.
        def recorded() -> dict[tuple[str, str], set[str]] | None:
            states: dict[tuple[str, str], set[str]] = {}
            for t, k, state in lake_rows(
                    env, "SELECT train, alert_key, state FROM alarms WHERE train IN (SELECT unnest(?))",
                    [SENSORS]):
                states.setdefault((t, k), set()).add(state)
            return states if all("raised" in states.get(w, set()) for w in WANT_ALERTS) else None

        states = wait_for(recorded, 60, "the seed-003 alarms in the lake", supervisor=services.supervisor)
        for device, key in WANT_ALERTS:
            listed = any(a["alert_key"] == key for a in open_alerts(env, device))
            assert listed or "cleared" in states[(device, key)], (device, key, states[(device, key)])
        return
    shadows = wait_for(delivered, 60, "alerts of cases 2, 3, 6 and 7 in their shadows",
                       supervisor=services.supervisor)
    assert any(a["alert_key"] == "temperature" and a["severity"] == 3
               for a in shadows["sensor-105"]), "case 6 must be critical"
    assert "humidity" in next(a for a in shadows["sensor-106"]
                              if a["alert_key"] == "humidity")["channels"]


def test_seed003_payloads_are_stored_as_the_table_says(services: Running, generic_sent: GenericRun) -> None:
    env = services.env

    def stored() -> list[tuple[Any, ...]] | None:
        rows = _sensor_rows(env)
        return rows if {(t, s, c) for t, s, c, _, _ in rows} >= set(EXPECTED_ROWS) else None

    rows = wait_for(stored, 90, "the seed-003 rows in the lake", supervisor=services.supervisor)
    got = {(t, s, c): (v, q) for t, s, c, v, q in rows}
    assert set(got) == set(EXPECTED_ROWS), "nothing else stored for these devices (case 5 is no data)"
    for key, (value, quality) in EXPECTED_ROWS.items():
        assert got[key] == (value, quality), key
    # No alert was raised for the quiet cases (1, 4, 8); the expected ones are in the lake too.
    def alerts_archived() -> set[tuple[str, str]] | None:
        found = _sensor_alerts(env)
        return found if found >= WANT_ALERTS else None

    found = wait_for(alerts_archived, 60, "the seed-003 alerts in the lake", supervisor=services.supervisor)
    assert not {t for t, _ in found} & set(QUIET_SENSORS), found
    for device in QUIET_SENSORS:
        assert open_alerts(env, device) == []


def test_a_critical_limit_reaches_that_trains_shadow_and_no_other(
    services: Running, trains_sent: int
) -> None:
    env = services.env

    def raised() -> list[dict[str, Any]] | None:
        alerts = [a for a in open_alerts(env, HOT) if a["alert_key"] == "bearing_temp_3"]
        return alerts or None

    alerts = wait_for(raised, 60, f"the critical bearing alert in {HOT}'s shadow",
                      supervisor=services.supervisor)
    assert alerts[0]["severity"] == 3 and alerts[0]["category"] == "limit"
    assert "bearing_temp_3" in alerts[0]["channels"]
    # Non-delivery: once the detector's events for all three trains are in the lake (they were
    # judged by then), the calm trains have no alert there nor in their shadows.
    def archived() -> list[tuple[Any, ...]] | None:
        rows = lake_rows(env, "SELECT train, alert_key, severity FROM alerts "
                              "WHERE train IN (SELECT unnest(?))", [TRAINS])
        return rows if any(t == HOT for t, _, _ in rows) else None

    rows = wait_for(archived, 60, "the hot train's alert in the lake", supervisor=services.supervisor)
    assert {t for t, _, _ in rows} == {HOT}, rows
    for train in CALM:
        assert open_alerts(env, train) == []


def _simulated(trains: list[str], start_ms: int) -> dict[str, list[bytes]]:
    """WORN_FRAMES frames per train from the fleet simulator at 1 Hz of sensor time, the first
    train's bearing_temp_5 degrading from the start."""
    model = FleetModel(len(trains), seed=WORN_SEED)
    runner = ScenarioRunner(Scenario(seed=WORN_SEED, fault=[Fault(
        train=0, kind="bearing_degradation", channel="bearing_temp_5", rate=WORN_RATE)]), trains)
    frames: dict[str, list[bytes]] = {t: [] for t in trains}
    for seq in range(1, WORN_FRAMES + 1):
        runner.before_step(model, model.t + 1.0, start_ms)
        snap = model.step(1.0)
        values = np.round(snap.values, 3)
        for i, train in enumerate(trains):
            readings = dict(zip(SIM_CHANNELS, values[i].tolist(), strict=True))
            frames[train].append(build_frame(train, seq, start_ms + seq * 1000, readings,
                                             speed_kmh=float(snap.speed_kmh[i]), rounded=True))
    return frames


def test_a_degrading_bearing_is_one_alarm_naming_it_and_a_critical_reading_one_at_once(
    services: Running,
) -> None:
    """Through the stack (MQTT, ingest, detector, notifier, archiver): the simulator's worn axle
    box becomes one alarm that names bearing_temp_5, raised once however long it lasts (the
    detector re-asserts it every 10 s of sensor time and escalates it); its sound twin raises
    nothing; then one critical reading on the sound train is a critical limit alarm at once
    (no warm-up), in its shadow within seconds."""
    env = services.env
    start_ms = int(time.time() * 1000) - (WORN_FRAMES + 5) * 1000
    frames = _simulated([WORN, SOUND], start_ms)

    async def both() -> None:
        await asyncio.gather(*(_publish(env, t, f) for t, f in frames.items()))

    asyncio.run(both())

    def alarms() -> dict[str, list[tuple[str, str]]] | None:
        rows = lake_rows(env, "SELECT train, alert_key, alarm_id FROM alarms WHERE state = 'raised' "
                              "AND train IN (SELECT unnest(?))", [[WORN, SOUND]])
        found: dict[str, list[tuple[str, str]]] = {}
        for train, key, alarm_id in rows:
            found.setdefault(train, []).append((key, alarm_id))
        return found if any(k == "bearing_temp_5" for k, _ in found.get(WORN, [])) else None

    raised = wait_for(alarms, 120, "the worn bearing's alarm in the lake", supervisor=services.supervisor)
    # The fault's two signs, one alarm each: two conditions (the bogie's vibration comes first in
    # the simulator), each one alarm whichever rules saw it.
    assert sorted(k for k, _ in raised[WORN]) == ["bearing_temp_5", "vibration_3"], raised
    assert SOUND not in raised, raised
    (top,) = {c for (c,) in lake_rows(env, "SELECT DISTINCT top_channel FROM alerts WHERE train = ? "
                                           "AND alert_key = 'bearing_temp_5'", [WORN])}
    assert top == "bearing_temp_5"
    shadow = {a["alert_key"]: a for a in open_alerts(env, WORN)}
    assert "bearing_temp_5" in shadow["bearing_temp_5"]["channels"]
    assert "peers" in shadow["bearing_temp_5"]["evidence"]

    critical = dict(zip(SIM_CHANNELS, np.round(FleetModel(1, seed=WORN_SEED).step(1.0).values[0], 3).tolist(),
                        strict=True)) | {"bearing_temp_2": 130.0}
    sent = time.monotonic()
    asyncio.run(_publish(env, SOUND, [build_frame(SOUND, WORN_FRAMES + 1, int(time.time() * 1000),
                                                  critical, rounded=True)]))
    alert = wait_for(lambda: next((a for a in open_alerts(env, SOUND)
                                   if a["alert_key"] == "bearing_temp_2"), None),
                     30, f"the critical bearing alarm in {SOUND}'s shadow", every=0.1,
                     supervisor=services.supervisor)
    assert alert["severity"] == 3 and alert["category"] == "limit"
    # 130 degC is past the critical limit and far above its peers: one alarm, both as evidence.
    assert {"limit", "peers"} <= set(alert["evidence"]), alert
    assert [a["alert_key"] for a in open_alerts(env, SOUND)].count("bearing_temp_2") == 1
    assert time.monotonic() - sent < 10, "a hard limit needs no warm-up"


def test_every_accepted_frame_is_in_the_lake_once_and_in_the_warehouse(
    services: Running, trains_sent: int, generic_sent: GenericRun
) -> None:
    env = services.env
    sql = ("SELECT count(*), count(DISTINCT (train, seq)), count(DISTINCT (train, seq, channel)) "
           "FROM telemetry WHERE train IN (SELECT unnest(?))")

    def complete() -> tuple[Any, ...] | None:
        rows = lake_rows(env, sql, [TRAINS])
        return rows[0] if rows and rows[0][1] >= len(TRAINS) * FRAMES else None

    total, frames, cells = wait_for(complete, 90, "every train frame in the lake",
                                    supervisor=services.supervisor)
    assert frames == len(TRAINS) * FRAMES
    assert total == cells == len(TRAINS) * FRAMES * CHANNELS, "each reading exactly once"
    per_frame = lake_rows(env, "SELECT train, seq, count(*) FROM telemetry WHERE train IN "
                               "(SELECT unnest(?)) GROUP BY ALL HAVING count(*) <> ?",
                          [TRAINS, CHANNELS])
    assert per_frame == []
    wait_for(lambda: {(t, s, c) for t, s, c, _, _ in _sensor_rows(env)} >= set(EXPECTED_ROWS), 90,
             "the seed-003 rows in the lake", supervisor=services.supervisor)

    from railpulse_archiver.settings import ArchiverSettings
    from railpulse_archiver.share import load_warehouse
    from railpulse_archiver.warehouse import connect_warehouse
    from railpulse_shared.config import load_settings

    settings = load_settings(ArchiverSettings, env)
    load_warehouse(settings)
    with connect_warehouse(settings.warehouse_url, settings.warehouse_schema) as conn:
        got = conn.execute(
            "SELECT count(*), count(DISTINCT (train, seq)), count(DISTINCT (train, seq, channel)) "
            "FROM telemetry WHERE train = ANY(%s)", [TRAINS]).fetchone()
        assert got == (total, frames, cells)
        sensors = conn.execute("SELECT DISTINCT train, seq, channel FROM telemetry "
                               "WHERE train = ANY(%s)", [SENSORS]).fetchall()
        assert {tuple(r) for r in sensors} == set(EXPECTED_ROWS)


# Emitted only when something fails, so a healthy run has none: each is checked by a real
# emission at unit level instead (tests/detector/test_snapshot_metrics.py).
ONLY_ON_FAILURE = {"SnapshotsFailed", "ModelStatesDropped"}


def test_every_metric_an_alarm_or_the_dashboard_watches_is_emitted_by_its_owner(
    services: Running, trains_sent: int, generic_sent: GenericRun
) -> None:
    """The metric contract, measured: the four services' EMF output of this run holds every
    `railpulse` metric the synthesised alarms and dashboard watch, with the very dimensions they
    use (so an alarm can fire), emitted by the service the one list names as its owner; every
    name emitted is in that list; and a failure path was exercised (ingest dead-lettered the
    seed-003 case 5, which the ingest error rate counts)."""
    from aws_cdk import App
    from metric_contract import alarm_metrics, dashboard_metrics, emitted, unlisted

    from railpulse_deploy.app import build_app
    from railpulse_shared.metric_names import METRICS

    app = build_app(App(outdir=str(services.run_dir / "cdk.out")), nag=False)
    templates = {s.stack_name: s.template for s in app.synth().stacks}
    watched = set().union(*alarm_metrics(templates).values()) | dashboard_metrics(templates)
    assert {name for name, _ in watched} >= {"RecordsIn", "RecordsDeadLettered", "SilentTrains"}
    for name, dims in watched:
        service = dict(dims)["service"]
        assert service in METRICS[name].owners, (name, service)
    need = {(n, d) for n, d in watched if n not in ONLY_ON_FAILURE}
    files = sorted((services.run_dir / "metrics").glob("*.emf"))

    def covered() -> dict[Any, list[float]] | None:
        got = emitted(files)
        return got if need <= set(got) else None

    try:
        got = wait_for(covered, 90, "every watched metric in the EMF output",
                       supervisor=services.supervisor)
    except AssertionError:
        missing = need - set(emitted(files))
        raise AssertionError(f"watched but never emitted: {sorted(missing, key=str)}") from None
    assert unlisted(name for name, _ in got) == set()
    ingest = {("service", "ingest"), ("stream", env_raw(services))}
    assert sum(got[("RecordsDeadLettered", frozenset(ingest))]) >= 1


def env_raw(services: Running) -> str:
    return services.env.get("RAILPULSE_STREAM_RAW", "telemetry-raw")
