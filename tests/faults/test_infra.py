"""Infrastructure faults through the whole local stack, with the four services as processes.

One module-scoped fixture starts ingest, detector, notifier and archiver once (as `railpulse demo`
does; buffers flush every 5 s; the archiver loads the warehouse every 5 s and reaches S3 through a
fault-injecting proxy, `AWS_ENDPOINT_URL_S3`; alarms clear after 20 s of quiet). The trains are
real edge agents (spool, QoS 1, backfill, shadow) publishing over MQTT with their own
certificates; their names are fresh per run, so every check is exact on a stack that has seen
other runs. The faults: the broker killed and restarted, a train in a tunnel, S3 writes failing,
the archiver killed between upload and commit, the warehouse crashing during a load, train clocks
minutes off. Each test states its pass criterion in its docstring.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import structlog
from infra_judge import (
    LAKE_POLL_S,
    alarm_lifetimes_s,
    assert_exactly_once,
    assert_lanes_in_order,
    assert_warehouse_equals_lake,
    complete,
    emf_docs,
    emf_values,
    lake_frames,
    missing_glue_partitions,
    rejected_frames,
    score_over_threshold_as_live,
)
from infra_support import S3FaultProxy, SteadySource, Trains, kill_broker
from stackrun import (
    SERVICES,
    Running,
    kill_service,
    lake_rows,
    open_alerts,
    start_service,
    suite_services,
    wait_for,
)
from tunnel import TcpProxy

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import StackConfig, load_config
from railpulse_devstack.env import s3_endpoint

pytestmark = pytest.mark.stack
logger = structlog.get_logger()

RUN = uuid.uuid4().hex[:8]


def _names(kind: str, n: int) -> list[str]:
    return [f"fault-{kind}-{RUN}-{i}" for i in range(n)]


BROKER_TRAINS = _names("broker", 3)
TUNNEL_TRAIN = _names("tunnel", 1)[0]
S3_TRAINS = _names("s3", 2)
KILL_TRAINS = _names("commit", 2)
WAREHOUSE_TRAINS = _names("warehouse", 2)
# Train clocks off by these many seconds: minutes ahead and behind, and beyond ingest's bound.
SKEWS_S = {"ahead": 240, "behind": -600, "beyond": 600}
SKEW_TRAINS = {kind: _names(f"clock-{kind}", 1)[0] for kind in SKEWS_S}
DEVICES = [*BROKER_TRAINS, TUNNEL_TRAIN, *S3_TRAINS, *KILL_TRAINS, *WAREHOUSE_TRAINS,
           *SKEW_TRAINS.values()]
CLEAR_AFTER_S = 20
"""The notifier's quiet period in this module (300 s in service): alarms clear within the test."""


@dataclass
class Infra:
    running: Running
    s3: S3FaultProxy
    config: StackConfig
    spool_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return self.running.env


@pytest.fixture(scope="module")
def infra(stack: dict[str, str]) -> Iterator[Infra]:
    proxy = S3FaultProxy(s3_endpoint(stack) or stack["AWS_ENDPOINT_URL"])
    overrides = {name: {"RAILPULSE_BUFFER_MAX_AGE_S": "5"} for name in SERVICES}
    overrides["archiver"] |= {"AWS_ENDPOINT_URL_S3": proxy.url, "RAILPULSE_WAREHOUSE_LOAD_EVERY_S": "5"}
    overrides["notifier"]["RAILPULSE_CLEAR_AFTER_S"] = str(CLEAR_AFTER_S)
    try:
        with suite_services(stack, "faults", RUN, DEVICES, overrides) as running:
            yield Infra(running, proxy, load_config(), running.run_dir / "spools")
    finally:
        proxy.close()


def test_broker_restart_while_trains_publish_loses_nothing(infra: Infra) -> None:
    """Pass: mosquitto is killed (SIGKILL) while three trains publish at 1 Hz and is started again
    by devstack's own `up` (same configuration and TLS). Every frame the trains generated before,
    during and after the outage is in the lake exactly once, each lane in sequence order; every
    train reconnected by itself and its spool drained to empty; frames sampled while the broker
    was down came back as backfill."""
    trains = Trains(infra.env, infra.spool_dir)
    try:
        agents = {n: trains.add(n, SteadySource(n), rate_hz=1.0) for n in BROKER_TRAINS}
        wait_for(lambda: all(a.link.connected.is_set() for a in agents.values()), 30,
                 "the trains to connect")
        wait_for(lambda: all(len(trains.generated(n)) >= 5 for n in agents), 30, "live frames")
        kill_broker(infra.config)
        down_from = {n: len(trains.generated(n)) for n in agents}
        wait_for(lambda: all(len(trains.generated(n)) >= down_from[n] + 4 for n in agents), 30,
                 "frames sampled while the broker is down")
        started = time.monotonic()
        devstack.up(infra.config)
        wait_for(lambda: all(a.link.connects >= 2 for a in agents.values()), 60,
                 "every train to reconnect")
        reconnected_s = time.monotonic() - started
        back = {n: len(trains.generated(n)) for n in agents}
        wait_for(lambda: all(len(trains.generated(n)) >= back[n] + 4 for n in agents), 30,
                 "live frames after the restart")
        trains.stop_sampling()
        trains.wait_drained(agents, 60)
        want = {n: trains.generated(n) for n in agents}
    finally:
        trains.close()
    found = wait_for(lambda: complete(infra.env, want), 120, "every frame in the lake",
                     supervisor=infra.running.supervisor, every=LAKE_POLL_S)
    assert_exactly_once(found, want)
    for train in want:
        assert_lanes_in_order(found[train])
        backfilled = {s for s, f in found[train].items() if f.backfill}
        assert backfilled, f"{train}: nothing was spooled during the outage"
    logger.info("broker_restart", reconnected_s=round(reconnected_s, 1),
                frames=[len(s) for s in want.values()])


# Time is compressed as in tests/edge: the tunnel train samples at 20 Hz, so its 20 s in the
# tunnel stand for ~7 minutes of frames at 1 Hz, and its forest (warm-up: 200 frames) is warm
# before it enters.
TUNNEL_HZ = 20.0
WARM_FRAMES = 260
TUNNEL_FRAMES = 400
LIVE_LATENCY_MAX_MS = 5_000
"""Sensor time to ingest for a live frame while the backfill drains (a loaded 2-core machine)."""
ALERT_LATENCY_MAX_MS = 10_000
"""Sensor time of a live critical reading to its alert in the train's shadow, during the drain."""


def test_tunnel_backfill_is_complete_in_order_and_never_judged_as_live(infra: Infra) -> None:
    """Pass: a train's link is cut (a TCP proxy drops it) for 400 frames at 20 Hz (~7 minutes at
    1 Hz) while it keeps sampling into its spool, in a regime its warm forest has never
    seen (one bearing 20 degC above its peers: inside every absolute limit, past the catalogue's
    peer spread). On reconnect it backfills oldest first while live frames flow: every frame is in
    the lake exactly once, the backfill lane in sequence order; the rules judge the backfill (the
    hot bearing is reported from it, late, as a reading in a tunnel should be) but no model alert
    is raised on a backfilled frame (the detector scores only live frames with its forest; scored
    as live, the tunnel's frames would be anomalous, checked in process); live frames sampled during the drain reach ingest within LIVE_LATENCY_MAX_MS, and a
    critical reading sampled during the drain reaches the shadow within ALERT_LATENCY_MAX_MS
    and ahead of the backfill's end."""
    env = infra.env
    tunnel = TcpProxy((env["RAILPULSE_MQTT_HOST"], int(env["RAILPULSE_MQTT_PORT"])))
    trains = Trains(env, infra.spool_dir)
    source = SteadySource(TUNNEL_TRAIN)
    try:
        # A slow backfill (2 batches of ~10 KiB a second) keeps the drain going for ~10 s.
        agent = trains.add(TUNNEL_TRAIN, source, rate_hz=TUNNEL_HZ, port=tunnel.port,
                           backfill_rate=2.0, backfill_max_bytes=10 * 1024)
        wait_for(lambda: len(trains.generated(TUNNEL_TRAIN)) >= WARM_FRAMES, 60,
                 "the forest's warm-up frames")
        tunnel.cut()
        source.offsets["bearing_temp_3"] = 20.0
        entered = len(trains.generated(TUNNEL_TRAIN))
        wait_for(lambda: len(trains.generated(TUNNEL_TRAIN)) >= entered + TUNNEL_FRAMES, 60,
                 "the frames sampled in the tunnel")
        source.offsets.clear()
        left = len(trains.generated(TUNNEL_TRAIN))
        tunnel.restore()
        wait_for(lambda: agent.link.connects >= 2, 30, "the train to reconnect")
        wait_for(lambda: agent.counters.backfill_messages >= 2, 30, "the backfill to start")
        hot_at_ms = int(time.time() * 1000)
        source.once("bearing_temp_5", 130.0)  # past the critical limit (120 degC), sampled live
        raised = wait_for(lambda: [a for a in open_alerts(env, TUNNEL_TRAIN)
                                   if a["alert_key"] == "bearing_temp_5"], 60,
                          "the live critical alert in the shadow", every=0.1)
        alert_latency_ms = int(time.time() * 1000) - hot_at_ms
        # Live frames keep flowing until the tunnel's frames are all acknowledged.
        wait_for(lambda: agent.counters.backfill_frames_acked >= left - entered, 90,
                 "the backfill to drain")
        trains.stop_sampling()
        trains.wait_drained([TUNNEL_TRAIN], 90)
        want = trains.generated(TUNNEL_TRAIN)
    finally:
        trains.close()
        tunnel.close()
    assert raised[0]["severity"] == 3
    found = wait_for(lambda: complete(env, {TUNNEL_TRAIN: want}), 120, "every frame in the lake",
                     supervisor=infra.running.supervisor, every=LAKE_POLL_S)
    assert_exactly_once(found, {TUNNEL_TRAIN: want})
    frames = found[TUNNEL_TRAIN]
    assert_lanes_in_order(frames)
    backfilled = {s for s, f in frames.items() if f.backfill}
    assert set(range(entered + 1, left - 1)) <= backfilled, "the tunnel's frames came as backfill"
    # The live frames of the drain: sampled after the reconnect, before the last backfilled frame
    # reached ingest.
    drain_end_ms = max(frames[s].ingested_ms for s in backfilled)
    during = [f for s, f in frames.items() if s >= left and not f.backfill
              and f.ts_ms <= drain_end_ms]
    assert len(during) >= 50, "live frames flowed while the backfill drained"
    worst = max(f.ingested_ms - f.ts_ms for f in during)
    assert worst <= LIVE_LATENCY_MAX_MS, f"live sensor-to-ingest latency {worst} ms during the drain"
    assert alert_latency_ms <= ALERT_LATENCY_MAX_MS, alert_latency_ms
    [(hot,)] = lake_rows(env, "SELECT seq FROM telemetry WHERE train = ? AND channel = "
                              "'bearing_temp_5' AND value = 130", [TUNNEL_TRAIN])
    assert not frames[hot].backfill
    assert frames[hot].ingested_ms < drain_end_ms, "the critical frame overtook the backfill"

    # The rules judged the backfill; the forest did not (the same frames as live would have
    # raised a model alert).
    alerts = wait_for(lambda: lake_rows(env, "SELECT frame_seq, alert_key, category FROM alerts "
                                             "WHERE train = ?", [TUNNEL_TRAIN]), 60,
                      "the train's alerts in the lake", every=LAKE_POLL_S)
    assert "bearing_temp_5" in {k for _, k, _ in alerts}
    assert any(k == "bearing_temp_3" and s in backfilled for s, k, _ in alerts), alerts
    assert not [a for a in alerts if a[0] in backfilled and a[2] == "model"], alerts
    ratio = score_over_threshold_as_live(env, TUNNEL_TRAIN, entered)
    assert ratio >= 2, f"scored live, the tunnel's regime is anomalous (the check has teeth): {ratio}"
    logger.info("tunnel", backfilled=len(backfilled), live_during_drain=len(during),
                worst_live_ingest_ms=worst, critical_to_shadow_ms=alert_latency_ms)


def _publish(infra: Infra, names: list[str], frames: int, during: Callable[[], None] | None = None,
             ) -> dict[str, set[int]]:
    """Trains sample at 10 Hz until each has `frames` frames; `during()` runs meanwhile (the fault).
    Returns every frame each generated, once all are acknowledged."""
    trains = Trains(infra.env, infra.spool_dir)
    try:
        for name in names:
            trains.add(name, SteadySource(name), rate_hz=10.0)
        if during is not None:
            during()
        wait_for(lambda: all(len(trains.generated(n)) >= frames for n in names), 120,
                 f"{frames} frames from each train")
        trains.stop_sampling()
        trains.wait_drained(names, 60)
        return {n: trains.generated(n) for n in names}
    finally:
        trains.close()


FAILED_WRITES = 10


def test_s3_write_failures_during_flushes_lose_and_duplicate_nothing(infra: Infra) -> None:
    """Pass: while two trains publish, every write of a telemetry object to S3 fails (S3's 500
    InternalError) until 10 writes have failed, i.e. two whole flush attempts (botocore tries
    each write 5 times; manifest writes pass, so the flush is pending before its objects fail).
    After recovery the lake holds every frame exactly once, Glue has the frames' partitions, the
    warehouse holds the same readings once each, and the archiver never exited (its flush retries
    absorbed the outage)."""
    env, s3 = infra.env, infra.s3
    failed_before = s3.counts["failed"]

    def outage() -> None:
        s3.fail_writes("telemetry/")
        try:
            wait_for(lambda: s3.counts["failed"] >= failed_before + FAILED_WRITES, 120,
                     "failed telemetry writes", supervisor=infra.running.supervisor)
        finally:
            s3.heal()

    want = _publish(infra, S3_TRAINS, 150, outage)
    found = wait_for(lambda: complete(env, want), 120, "every frame in the lake",
                     supervisor=infra.running.supervisor, every=LAKE_POLL_S)
    assert_exactly_once(found, want)
    assert missing_glue_partitions(env, found) == set()
    assert all(p.name != "archiver" for p in infra.running.supervisor.failed())
    assert_warehouse_equals_lake(infra.running, want)


def test_archiver_killed_between_upload_and_commit_redoes_the_flush_once(infra: Infra) -> None:
    """Pass: a flush uploads its objects, its commit (the shard manifest's update) is held at the
    S3 proxy, and the whole archiver task is killed (SIGKILL to it, its KCL daemons and their
    record processors) and started again, as ECS replaces a dead task. The new task redoes the
    pending flush with the same boundaries: the lake holds every frame exactly once, Glue has the
    frames' partitions, and the warehouse holds the same readings once each."""
    env, s3 = infra.env, infra.s3
    held_before = s3.counts["held"]

    def crash() -> None:
        s3.hold_commits("telemetry")
        try:
            wait_for(lambda: s3.counts["held"] > held_before, 60, "a flush's commit at the proxy",
                     supervisor=infra.running.supervisor)
            kill_service(infra.running, "archiver")
        finally:
            s3.release()
        start_service(infra.running, "archiver")

    want = _publish(infra, KILL_TRAINS, 150, crash)
    found = wait_for(lambda: complete(env, want), 120, "every frame in the lake",
                     supervisor=infra.running.supervisor, every=LAKE_POLL_S)
    assert_exactly_once(found, want)
    assert missing_glue_partitions(env, found) == set()
    assert_warehouse_equals_lake(infra.running, want)


def _archiver_log_count(infra: Infra, event: str) -> int:
    logs = infra.running.run_dir / "logs" / "archiver.log"
    return sum(1 for line in logs.open(errors="replace")
               if line.startswith("{") and f'"event": "{event}"' in line)


def test_warehouse_crash_during_a_load_loads_every_reading_once(infra: Infra) -> None:
    """Pass: the archiver's periodic warehouse load is caught inside its COPY into `telemetry`
    (a SHARE lock the test holds makes it wait there, after its ledger row is written in the same
    transaction), and PostgreSQL is then stopped hard (immediate shutdown: the load's
    transaction dies mid-COPY); loads fail while it is down; devstack starts it again. After
    recovery the warehouse holds every reading of the trains' frames exactly once, the same
    readings as the lake (no object loaded twice: the ledger; none skipped)."""
    import psycopg

    from railpulse_devstack import postgres

    env, config = infra.env, infra.config
    # Taken before the trains publish, so the first load of their objects waits on it.
    locker = psycopg.connect(env["RAILPULSE_PG_DSN"])
    try:
        locker.execute("LOCK TABLE telemetry IN SHARE MODE")
        want = _publish(infra, WAREHOUSE_TRAINS, 100)
        found = wait_for(lambda: complete(env, want), 120, "every frame in the lake",
                         supervisor=infra.running.supervisor, every=LAKE_POLL_S)
        assert_exactly_once(found, want)

        def copy_waiting() -> bool:
            with psycopg.connect(env["RAILPULSE_PG_DSN"], autocommit=True) as probe:
                row = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                                    "= 'Lock' AND query LIKE 'COPY \"telemetry\"%%'").fetchone()
            return bool(row and row[0])

        wait_for(copy_waiting, 60, "a load waiting inside its COPY into telemetry",
                 supervisor=infra.running.supervisor)
        failures = _archiver_log_count(infra, "warehouse_load_failed")
        pid = postgres.pid(config)
        assert pid is not None
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown: no checkpoint, every session cut
        wait_for(lambda: postgres.pid(config) is None, 30, "PostgreSQL to stop")
    finally:
        with contextlib.suppress(psycopg.Error):
            locker.close()
    # The interrupted load and at least one more fail before the warehouse is back.
    wait_for(lambda: _archiver_log_count(infra, "warehouse_load_failed") >= failures + 2, 60,
             "loads to fail while the warehouse is down", supervisor=infra.running.supervisor)
    postgres.start(config)
    assert_warehouse_equals_lake(infra.running, want)


def _clock_off_by(seconds: float) -> Callable[[], float]:
    return lambda: time.time() + seconds


def _alerted(env: dict[str, str], train: str, key: str) -> bool:
    return any(a["alert_key"] == key for a in open_alerts(env, train))


def _quiet(env: dict[str, str], train: str) -> bool:
    return not open_alerts(env, train)


def test_skewed_train_clocks_lose_nothing_and_alert_on_wall_time(infra: Infra) -> None:
    """Pass: three trains whose clocks are 4 min ahead, 10 min behind and 10 min ahead publish
    while each samples one critical bearing temperature. Every frame of the first two is in the
    lake exactly once, with the train's own sensor time; every frame of the third (beyond the
    5 min bound past the IoT receipt time) is on the rejects queue as timestamp_out_of_bounds and
    none is in the lake. Ingest reports each skewed clock (`ClockSkew` in its EMF, `clock_skew` in
    its log). The critical readings of both skewed trains reach their shadows; their alarms clear
    after the quiet period of wall time (not minutes early or late), and every NotificationLatency
    of the run is the platform's (neither negative nor minutes long)."""
    env = infra.env
    since_ms = int(time.time() * 1000)
    trains = Trains(env, infra.spool_dir)
    sources = {kind: SteadySource(name) for kind, name in SKEW_TRAINS.items()}
    try:
        for kind, name in SKEW_TRAINS.items():
            trains.add(name, sources[kind], rate_hz=5.0, clock=_clock_off_by(SKEWS_S[kind]))
        wait_for(lambda: all(len(trains.generated(n)) >= 10 for n in SKEW_TRAINS.values()), 60,
                 "the skewed trains' first frames")
        for source in sources.values():
            source.once("bearing_temp_5", 130.0)
        wait_for(lambda: all(len(trains.generated(n)) >= 40 for n in SKEW_TRAINS.values()), 60,
                 "40 frames from each skewed train")
        trains.stop_sampling()
        trains.wait_drained(SKEW_TRAINS.values(), 60)
        want = {name: trains.generated(name) for name in SKEW_TRAINS.values()}
    finally:
        trains.close()
    kept = {SKEW_TRAINS[k]: want[SKEW_TRAINS[k]] for k in ("ahead", "behind")}
    beyond = SKEW_TRAINS["beyond"]

    # Alerts: in each skewed train's shadow, then gone after the quiet period of wall time.
    for train in kept:
        wait_for(partial(_alerted, env, train, "bearing_temp_5"), 60,
                 f"the critical alert in {train}'s shadow", supervisor=infra.running.supervisor)
    for train in kept:
        wait_for(partial(_quiet, env, train), CLEAR_AFTER_S + 60, f"{train}'s alarm to clear",
                 supervisor=infra.running.supervisor)
    lifetimes = wait_for(partial(alarm_lifetimes_s, env, list(kept)), 60,
                         "the skewed trains' alarms in the lake", supervisor=infra.running.supervisor,
                         every=LAKE_POLL_S)
    assert all(CLEAR_AFTER_S <= s <= CLEAR_AFTER_S + 30 for s in lifetimes.values()), lifetimes

    # Data: kept with the train's own time, or dead-lettered with the reason.
    found = wait_for(lambda: complete(env, kept), 120, "the skewed trains' frames in the lake",
                     supervisor=infra.running.supervisor, every=LAKE_POLL_S)
    assert_exactly_once(found, kept)
    for kind in ("ahead", "behind"):
        skews = {f.ts_ms - f.received_ms for f in found[SKEW_TRAINS[kind]].values() if not f.backfill}
        assert skews and all(abs(s - SKEWS_S[kind] * 1000) < 5_000 for s in skews), (kind, skews)
    reasons = rejected_frames(env, beyond, want[beyond])
    assert set(reasons) == want[beyond]
    assert set(reasons.values()) == {"timestamp_out_of_bounds"}
    assert lake_frames(env, [beyond]) == {}

    # Reported: each kept train's skew by name, and latency measured from the receipt time.
    ingest = emf_docs(infra.running, "ingest", since_ms)
    reported = {t: s for d in ingest for t, s in d.get("clock_skew_ms", {}).items() if t in kept}
    assert {t: round(s / 60_000) for t, s in reported.items()} == {
        SKEW_TRAINS["ahead"]: 4, SKEW_TRAINS["behind"]: -10}
    live = sum(not f.backfill for frames in found.values() for f in frames.values())
    assert sum(sum(emf_values(d, "FramesClockSkewed")) for d in ingest) >= live
    logged = [line for line in (infra.running.run_dir / "logs" / "ingest.log").open()
              if line.startswith("{") and '"event": "clock_skew"' in line]
    assert all(any(f'"device": "{t}"' in line for line in logged) for t in kept), logged
    notifier = emf_docs(infra.running, "notifier", since_ms)
    latencies = [v for d in notifier for v in emf_values(d, "NotificationLatency")]
    assert latencies and all(0 <= v <= 30_000 for v in latencies), latencies
