"""Worker faults through the whole local stack, the services as processes (as on Fargate).

One module-scoped fixture starts the four services like `railpulse demo` does, plus a second
ingest and a second detector worker on the same KCL applications (distinct worker ids), plus an
ingest worker of its own on a stream of its own for the resharding test; it waits until each pair
of workers shares its two shards. Each test then states its pass criterion and asserts it. The
kill tests SIGSTOP a worker first, check that it is caught in the state the fault is about (work
done past its checkpoint), then SIGKILL it: the fault is certain, not a matter of timing.

Resharding runs on a stream created for this module (`raw-reshard-<run>`, its own ingest worker
and lease table, forwarding into the shared `telemetry`), not on the stack's `telemetry-raw`: a
reshard cannot be undone (a merge back leaves four closed shards behind) and the closed parents'
leases would outlive this module in the shared lease table, where the next `running_services`
would wait for them to be renewed. Frames enter that stream as the IoT rule writes them
(PutRecords of rule envelopes, keyed by train), which is what resharding is about.

Trains are named per run (uuid), so every check on them is exact on a stack that has seen other
runs.
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from stackrun import Running, Worker, client, open_alerts, running_services, wait_for
from workers_support import (
    Feeder,
    KinesisSink,
    MqttSink,
    assert_in_lake_once,
    calm,
    consuming,
    envelope,
    forwarded,
    frame,
    freeze,
    lake_frames,
    leases,
    log_events,
    model_state,
    open_shards,
    owners,
    put_records,
    shared_by,
    since_now,
    take_rejects,
    thaw,
    trains_by_shard,
)

from railpulse_cli.demo.supervisor import Process
from railpulse_edge.fleet import ensure_certs

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:8]
RESHARD_STREAM = f"raw-reshard-{RUN}"
RESHARD_APP = f"railpulse-ingest-reshard-{RUN}"
INGEST_APP, DETECTOR_APP = "railpulse-ingest", "railpulse-detector"
PAIRS = {  # application -> {KCL worker id: process name}
    INGEST_APP: {"ingest-demo": "ingest", "ingest-b": "ingest-b"},
    DETECTOR_APP: {"detector-demo": "detector", "detector-b": "detector-b"},
}
WARMUP = 40
"""Frames a model learns before it judges (the service's setting, shortened for the test)."""


@pytest.fixture(scope="module")
def services(stack: dict[str, str]) -> Iterator[Running]:
    env = dict(stack)
    kinesis = client(env, "kinesis")
    kinesis.create_stream(StreamName=RESHARD_STREAM, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=RESHARD_STREAM,
                                             WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    overrides = {
        "archiver": {"RAILPULSE_BUFFER_MAX_AGE_S": "5"},
        # Snapshots every 10 s, checkpoints tried every 3 s: as in production (300 s / 5 s), a
        # checkpoint may not pass what no snapshot holds yet.
        "detector": {"RAILPULSE_MODEL_WARMUP": str(WARMUP), "RAILPULSE_SNAPSHOT_INTERVAL_S": "10",
                     "RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "3"},
    }
    workers = [
        Worker("ingest-b", "ingest"),
        Worker("detector-b", "detector"),
        Worker("ingest-reshard", "ingest", {"RAILPULSE_STREAM_RAW": RESHARD_STREAM,
                                            "RAILPULSE_KCL_APPLICATION_NAME": RESHARD_APP},
               application=RESHARD_APP),
    ]
    # Not pytest's tmp_path: concurrent pytest sessions prune each other's old base temp dirs.
    run_dir = Path(env["RAILPULSE_STACK_DIR"]).parent / "faults" / time.strftime(
        f"workers-%Y%m%dT%H%M%S-{RUN}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            # This process reads the lake too (DuckDB's S3 secret takes botocore's credentials).
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
                mp.setenv(key, env[key])
            with running_services(env, run_dir, overrides, workers=workers) as running:
                # The KCL balances the two leases over the two workers of each application.
                for app, names in PAIRS.items():
                    pair = {worker: process(running, name) for worker, name in names.items()}
                    wait_for(lambda app=app, pair=pair: shared_by(env, app, pair), 150,
                             f"each {app} worker consuming a shard", every=1.0,
                             supervisor=running.supervisor)
                reshard = process(running, "ingest-reshard")
                wait_for(lambda: shared_by(env, RESHARD_APP, {"ingest-reshard": reshard}, 2), 150,
                         "the resharding test's worker consuming both shards", every=1.0,
                         supervisor=running.supervisor)
                yield running
    finally:
        kinesis.delete_stream(StreamName=RESHARD_STREAM, EnforceConsumerDeletion=True)
        dynamodb = client(env, "dynamodb")
        with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
            dynamodb.delete_table(TableName=RESHARD_APP)  # the KCL made it, if it started


def test_poison_records_are_rejected_with_their_bytes_and_the_shards_move_on(
    services: Running,
) -> None:
    """Pass: malformed JSON, a schema violation, a spoofed identity, an oversized payload and
    binary garbage (in and instead of an envelope), interleaved with good frames on the same
    shards (same partition keys), each land in the rejects queue with their reason and raw bytes;
    every good frame is in the lake exactly once, and none of the poison; each shard's checkpoint
    passes its poison, and a good frame sent after it is archived within the deadline."""
    env = services.env
    by_shard = trains_by_shard(env, env["RAILPULSE_STREAM_RAW"], 1, f"poison-{RUN}")
    trains = [t for ts in by_shard.values() for t in ts]
    start_ms = int(time.time() * 1000) - 60_000
    spoofed = f"victim-{RUN}"
    poison_by_train = {  # (the reason expected, the raw bytes the reject must carry)
        train: [
            ("malformed_json", b'{"kind": "frame.v1", "train": "' + train.encode() + b'", "seq":'),
            ("schema_violation", negative_seq(frame(train, 3, start_ms)[2])),
            ("identity_mismatch", frame(spoofed, 4, start_ms)[2]),
            ("oversized", b'{"kind":"frame.v1","pad":"' + b"x" * 140_000 + b'"}'),
            ("malformed_json", bytes(range(256)) * 4),  # binary garbage as a payload
            ("bad_envelope", b"\x00\x9f\x92\x96 not an envelope " + bytes(range(200, 256))),
        ]
        for train in trains
    }
    records: list[tuple[str, bytes]] = []
    expected: list[tuple[str, bytes, str]] = []  # per record: reason ("" if good), raw, train
    good: set[tuple[str, int]] = set()
    for seq in range(1, 8):  # good frames 1-7 with a poison record after each of the first six
        for train in trains:
            records.append((train, envelope(train, frame(train, seq, start_ms)[2])))
            expected.append(("", b"", train))
            good.add((train, seq))
            if seq <= len(poison_by_train[train]):
                reason, raw = poison_by_train[train][seq - 1]
                records.append((train, raw if reason == "bad_envelope" else envelope(train, raw)))
                expected.append((reason, raw, train))
    positions = put_records(env, env["RAILPULSE_STREAM_RAW"], records)
    poison = {pos: exp for pos, exp in zip(positions, expected, strict=True) if exp[0]}

    rejects = take_rejects(env, env["RAILPULSE_STREAM_RAW"], set(poison), timeout=90)
    for pos, (reason, raw, train) in poison.items():
        record, attributes = rejects[pos]
        assert record.reason.value == reason, (pos, record.reason, record.detail)
        assert record.raw == raw and record.raw_size == len(raw), (pos, reason)
        assert attributes["reason"]["StringValue"] == reason
        if reason != "bad_envelope":  # the envelope was read: the reject names the device
            assert record.device == train, (pos, record.device)

    # The shards move on: a later good frame per train arrives, and every checkpoint passes the
    # shard's last poison record.
    later = [frame(train, 8, start_ms) for train in trains]
    put_records(env, env["RAILPULSE_STREAM_RAW"], [(t, envelope(t, body)) for t, _, body in later])
    good |= {(t, s) for t, s, _ in later}
    assert_in_lake_once(env, good, 90, supervisor=services.supervisor)
    assert lake_frames(env, [spoofed]) == {}, "the spoofed frame reached the lake"
    last_poison = {shard: max(int(seq) for s, seq in poison if s == shard) for shard, _ in poison}

    def checkpointed_past() -> dict[str, str] | None:
        table = leases(env, INGEST_APP)
        marks = {shard: table[shard].checkpoint for shard in last_poison}
        ok = all(m.isdigit() and int(m) > last_poison[s] for s, m in marks.items())
        return marks if ok else None

    wait_for(checkpointed_past, 60, "every checkpoint past its shard's poison",
             supervisor=services.supervisor)


def negative_seq(body: bytes) -> bytes:
    """A frame that breaks its schema (a sequence number below 0)."""
    broken = body.replace(b'"seq":3,', b'"seq":-3,')
    assert broken != body
    return broken


def process(running: Running, name: str) -> Process:
    return next(p for p in running.supervisor.processes if p.name == name)


@dataclass
class Takeover:
    """Two workers of one application, one shard each: the victim's shard moves to the survivor."""

    running: Running
    application: str
    victim_id: str
    survivor_id: str
    shard: str
    """The victim's shard."""
    victim: Process
    survivor: Process
    killed_at: float = 0.0

    @classmethod
    def of(cls, running: Running, application: str) -> Takeover:
        held = owners(running.env, application)
        assert set(held) == set(PAIRS[application]), held
        victim_id, survivor_id = sorted(held)
        (shard,) = held[victim_id]
        names = PAIRS[application]
        return cls(running, application, victim_id, survivor_id, shard,
                   process(running, names[victim_id]), process(running, names[survivor_id]))

    def kill(self) -> None:
        """SIGKILL the victim; return once the survivor owns every lease (the lease table)."""
        everything = {s for shards in owners(self.running.env, self.application).values()
                      for s in shards}
        self.killed_at = time.time()
        self.running.supervisor.stop(self.victim, signal.SIGKILL)
        wait_for(lambda: owners(self.running.env, self.application) == {
            self.survivor_id: everything}, 90, f"{self.survivor_id} to own every lease",
            supervisor=self.running.supervisor)


def _after(event: dict[str, object], moment: float) -> bool:
    """Whether a log event was written at or after `moment` (epoch seconds)."""
    stamp = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    return stamp.timestamp() >= moment


def replayed_from(env: dict[str, str], since: datetime, trains: list[str], shard: str) -> set[
        tuple[str, int]]:
    """The frames of `trains` forwarded from `shard` of `telemetry-raw` past its checkpoint: what
    the KCL gives the shard's next owner again."""
    mark = leases(env, INGEST_APP)[shard].checkpoint
    after = int(mark) if mark.isdigit() else -1
    return {(f.train, f.seq) for f in forwarded(env, since, trains)
            if f.source is not None and f.source.shard_id == shard
            and f.source.stream == env["RAILPULSE_STREAM_RAW"]
            and int(f.source.sequence_number) > after}


def test_killing_an_ingest_worker_mid_batch_loses_nothing_and_duplicates_nothing(
    services: Running,
) -> None:
    """Pass: with two ingest workers sharing `telemetry-raw` and trains publishing over MQTT, one
    worker is killed (-9) while frames it forwarded are past its checkpoint; the survivor owns
    every lease (the DynamoDB lease table says so), drops the replayed frames as duplicates,
    and every frame published is in the lake exactly once, with no duplicate on `telemetry`."""
    env = services.env
    trains = [t for ts in trains_by_shard(env, env["RAILPULSE_STREAM_RAW"], 2,
                                          f"ingest-kill-{RUN}").values() for t in ts]
    ensure_certs(trains, Path(env["RAILPULSE_CERTS_DIR"]), env["AWS_ENDPOINT_URL"])
    takeover = Takeover.of(services, INGEST_APP)
    shard, survivor = takeover.shard, takeover.survivor
    since = since_now()
    feeder = Feeder(trains, MqttSink(env, trains), rate_hz=5).start()
    try:
        def caught() -> set[tuple[str, int]] | None:
            """Mid-batch: frozen while frames it forwarded are past its checkpoint (frozen, it
            cannot checkpoint them any more: they will be replayed)."""
            if not replayed_from(env, since, trains, shard):
                return None
            freeze(takeover.victim)
            replayed = replayed_from(env, since, trains, shard)
            if not replayed:
                thaw(takeover.victim)  # it checkpointed in between: try again
            return replayed or None

        replayed = wait_for(caught, 60, f"{takeover.victim_id} forwarding past its checkpoint",
                            supervisor=services.supervisor)
        takeover.kill()
        wait_for(lambda: consuming(survivor, shard), 60, f"{takeover.survivor_id} consuming "
                 f"{shard}", supervisor=services.supervisor)
        feeder.wait_seq(feeder.last_seq + 10)  # frames keep flowing through the survivor
    finally:
        feeder.stop()

    assert_in_lake_once(env, feeder.sent, 120, supervisor=services.supervisor)
    counts = Counter((f.train, f.seq) for f in forwarded(env, since, trains))
    assert {k: n for k, n in counts.items() if n > 1} == {}, "duplicates reached telemetry"
    assert set(counts) == set(feeder.sent)
    # The survivor learned what the victim had forwarded, then was replayed those frames and
    # dropped each of them.
    since_kill = [e for e in log_events(survivor, "dedup_recovered", "duplicates_dropped")
                  if e["shard_id"] == shard and _after(e, takeover.killed_at)]
    recovered = [e["frames"] for e in since_kill if e["event"] == "dedup_recovered"]
    assert recovered and recovered[-1] >= len(replayed), (recovered, len(replayed))
    dropped = sum(e["count"] for e in since_kill if e["event"] == "duplicates_dropped")
    assert dropped >= len(replayed), (dropped, len(replayed))


def test_killing_a_detector_worker_restores_its_models_and_scores_every_frame(
    services: Running,
) -> None:
    """Pass: with two detector workers sharing `telemetry` and every train's model past its
    warm-up, one worker is killed (-9) while frames flow; the survivor owns its shard, restores
    the shard's model snapshot from S3 (`model_snapshot_restored`), and in the end every model of
    both shards has learned every frame of its train exactly once (frames learned = frames sent:
    the restored models continued, from a state far from zero, with none of the shard's frames
    left out or fed twice); an anomaly injected after the takeover on a train of the moved shard
    is raised by its restored model and reaches that train's shadow, and no other train alarms."""
    env = services.env
    by_shard = trains_by_shard(env, env["RAILPULSE_STREAM_TELEMETRY"], 2, f"detector-kill-{RUN}")
    trains = [t for ts in by_shard.values() for t in ts]
    ensure_certs(trains, Path(env["RAILPULSE_CERTS_DIR"]), env["AWS_ENDPOINT_URL"])  # shadows
    takeover = Takeover.of(services, DETECTOR_APP)
    shard = takeover.shard
    feeder = Feeder(trains, KinesisSink(env, env["RAILPULSE_STREAM_RAW"]), rate_hz=8).start()
    try:
        def learned(least: int) -> bool:
            return all(model_state(env, s).get(t, (0, 0))[1] >= least
                       for s, ts in by_shard.items() for t in ts)

        wait_for(lambda: learned(WARMUP + 30), 120, "every model past its warm-up, saved",
                 every=2.0, supervisor=services.supervisor)
        def caught() -> dict[str, tuple[int, int]] | None:
            """Frozen with frames learned that its last snapshot lacks (a second of frames and
            more since the snapshot: processed, at 200 ms polls)."""
            freeze(takeover.victim)
            saved = model_state(env, shard)
            if min(saved[t][0] for t in by_shard[shard]) < feeder.last_seq - 8:
                return saved
            thaw(takeover.victim)
            return None

        saved = wait_for(caught, 60, f"{takeover.victim_id} ahead of its snapshot",
                         supervisor=services.supervisor)
        takeover.kill()

        def restored() -> list[dict[str, object]]:
            return [e for e in log_events(takeover.survivor, "model_snapshot_restored")
                    if str(e["key"]).endswith(f"/{shard}.bin") and _after(e, takeover.killed_at)]

        wait_for(restored, 60, f"{takeover.survivor_id} to restore {shard}'s models",
                 supervisor=services.supervisor)
        feeder.wait_seq(feeder.last_seq + 10)
    finally:
        last = feeder.stop()

    hot = by_shard[shard][0]
    readings = calm(last + 1) | {"bearing_temp_3": calm(last + 1)["bearing_temp_3"] + 30.0}
    final = [frame(t, last + 1, feeder.start_ms, readings if t == hot else None) for t in trains]
    put_records(env, env["RAILPULSE_STREAM_RAW"], [(t, envelope(t, b)) for t, _, b in final])

    def alarmed() -> list[dict[str, object]]:
        # One alarm about the bearing, whichever saw it first (its peers, the forest): the
        # forest's evidence joins it.
        return [a for a in open_alerts(env, hot)
                if a["alert_key"] == "bearing_temp_3" and "model" in a.get("evidence", [])]

    wait_for(alarmed, 90, f"the model alarm in {hot}'s shadow", supervisor=services.supervisor)

    def models() -> dict[str, tuple[int, int]] | None:
        state = {t: model_state(env, s).get(t, (0, 0)) for s, ts in by_shard.items() for t in ts}
        return state if all(seq == last + 1 for seq, _ in state.values()) else None

    state = wait_for(models, 60, "every model saved after the last frame", every=2.0,
                     supervisor=services.supervisor)
    assert {t: n for t, (_, n) in state.items()} == dict.fromkeys(trains, last + 1), (
        f"frames learned per train, of {last + 1} sent")
    assert min(saved[t][1] for t in by_shard[shard]) >= WARMUP + 30, saved  # not from zero
    for train in trains:
        if train != hot:
            assert [a for a in open_alerts(env, train) if a["category"] == "model"] == [], train


def test_resharding_the_raw_stream_while_consuming_keeps_every_frame_once_and_in_order(
    services: Running,
) -> None:
    """Pass: trains publish continuously into a 2-shard raw stream while it is resharded to 4;
    the ingest worker ends both parents (SHARD_END checkpoints) and consumes the four children;
    each train's frames came through its parent then its child, and reach `telemetry` exactly
    once each in sequence order; every frame is in the lake exactly once."""
    env = services.env
    kinesis = client(env, "kinesis")
    parents = set(open_shards(env, RESHARD_STREAM))
    trains = [t for ts in trains_by_shard(env, RESHARD_STREAM, 3, f"reshard-{RUN}").values()
              for t in ts]
    since = since_now()
    feeder = Feeder(trains, KinesisSink(env, RESHARD_STREAM), rate_hz=5).start()

    def sources() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for f in forwarded(env, since, trains):
            if f.source is not None:
                out.setdefault(f.train, set()).add(f.source.shard_id)
        return out

    try:
        wait_for(lambda: len(sources()) == len(trains), 60, "every train flowing",
                 supervisor=services.supervisor)
        kinesis.update_shard_count(StreamName=RESHARD_STREAM, TargetShardCount=4,
                                   ScalingType="UNIFORM_SCALING")
        children = set(open_shards(env, RESHARD_STREAM))
        assert len(children) == 4 and not children & parents
        wait_for(lambda: all(s & children for s in sources().values())
                 and len(sources()) == len(trains), 150,
                 "every train's frames coming from a child shard", supervisor=services.supervisor)
        feeder.wait_seq(feeder.last_seq + 5)
    finally:
        feeder.stop()

    frames = forwarded(env, since, trains)
    lost = set(feeder.sent) - {(f.train, f.seq) for f in frames}
    assert not lost, f"never reached telemetry: {[(k, feeder.landed.get(k)) for k in sorted(lost)]}"
    assert_in_lake_once(env, feeder.sent, 120, supervisor=services.supervisor)
    for train in trains:
        mine = [f for f in frames if f.train == train]
        assert [f.seq for f in mine] == sorted(s for t, s in feeder.sent if t == train), train
        came = [f.source.shard_id for f in mine if f.source is not None]
        switch = next(i for i, s in enumerate(came) if s in children)
        assert set(came[:switch]) <= parents and set(came[switch:]) <= children, (train, came)
        assert switch > 0, f"{train} never went through a parent"
    worker = process(services, "ingest-reshard")
    assert {e["shard_id"] for e in log_events(worker, "shard_ended")} == parents
    assert children <= {s for s in leases(env, RESHARD_APP) if consuming(worker, s)}
