"""Hostile input through the whole local stack: one train (or one bad record) cannot hurt the fleet.

The four services run as processes (as on Fargate); the hostile trains publish with their own
certificates over MQTT (awsiotsdk, QoS 1), as an attacker or a careless device would: integers past
2^63, NUL and control characters in channel names, 10,000 channels, invalid UTF-8, JSON nested
10,000 deep, a message over IoT Core's 128 KB limit, a sequence number reused with other content,
and a counter that starts again (a new epoch). A second test puts on `telemetry` events that no
consumer can store (as a faulty producer upstream might), behind ingest's checks. A third lets the
rejects queue lose its messages (as SQS does after 14 days) and finds every reject in the lake.

Pass criteria (each test's docstring states its own):
- every message ends as data (in the lake) or as a reject with its reason and raw bytes;
- every shard's checkpoint of every consumer moves past the bad records within 30 s;
- the warehouse keeps loading what follows;
- no service logs a traceback for bad input.

Trains are named per run (uuid), so every check on them is exact on a stack that has seen others.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from stackrun import Running, client, lake_rows, mqtt_links, suite_services, wait_for
from waiting import written_lines
from workers_support import leases, put_records, trains_by_shard

from railpulse_cli.demo.run import KCL_APPLICATIONS
from railpulse_edge.frames import build_frame
from railpulse_shared import codec
from railpulse_shared.contracts import AcceptedFrame, Reading, RejectedRecord

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:8]
CHECKPOINT_DEADLINE_S = 30.0
"""The issue's bound: every shard's checkpoint passes a bad record within this time."""
BEARINGS = {f"bearing_temp_{i}": 40.0 + i for i in range(1, 5)}
NOW_MS = int(time.time() * 1000)


@pytest.fixture(scope="module")
def trains(stack: dict[str, str]) -> list[str]:
    """One hostile train on each shard of `telemetry-raw`: every shard meets the hostile input."""
    by_shard = trains_by_shard(stack, stack["RAILPULSE_STREAM_RAW"], 1, f"hostile-{RUN}")
    return [t for ts in by_shard.values() for t in ts]


@pytest.fixture(scope="module")
def services(stack: dict[str, str], trains: list[str]) -> Iterator[Running]:
    overrides = {
        # Flush, load and snapshot often: the checkpoints follow them, and the test waits 30 s.
        "archiver": {"RAILPULSE_BUFFER_MAX_AGE_S": "3", "RAILPULSE_WAREHOUSE_LOAD_EVERY_S": "5"},
        "detector": {"RAILPULSE_SNAPSHOT_INTERVAL_S": "5", "RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "2"},
        "ingest": {"RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "2"},
    }
    with suite_services(stack, "hostile", RUN, trains, overrides) as running:
        yield running


def frame_json(train: str, seq: int, readings: dict[str, Any], **extra: Any) -> bytes:
    """A frame as raw JSON: no contract type stands between the test and the bytes it sends."""
    body = {"kind": "frame.v1", "train": train, "seq": seq, "ts_ms": NOW_MS + seq, "readings": readings,
            **extra}
    return json.dumps(body, separators=(",", ":")).encode()


def hostile_messages(train: str) -> list[tuple[str, bytes]]:
    """(expected reject reason, payload) of every hostile message one train sends."""
    ten_thousand = {f"c{i:04d}": 1.0 for i in range(10_000)}  # ~120 KB: under the broker's limit
    deep = b"[" * 10_000 + b"]" * 10_000
    return [
        ("schema_violation", frame_json(train, 2**63, BEARINGS)),
        ("schema_violation", frame_json(train, 123456789012345678901234567890, BEARINGS)),
        ("schema_violation", frame_json(train, 10, {"a\u0000b": 1.0})),
        ("schema_violation", frame_json(train, 11, {"bell\u0007": 1.0, "bearing_temp_1": 40.0})),
        ("schema_violation", frame_json(train, 12, {"x" * 200: 1.0})),
        ("schema_violation", frame_json(train, 13, ten_thousand)),
        ("schema_violation", frame_json(train, 14, BEARINGS, ts_ms=10**30)),
        ("malformed_json", frame_json(train, 15, BEARINGS).replace(b'"bearing_temp_1"', b'"bearing_\xff\xfe"')),
        ("malformed_json", deep),
        ("malformed_json", b'{"kind":"frame.v1","train":"' + train.encode() + b'","x":' + deep + b"}"),
    ]


async def publish_all(env: dict[str, str], plan: dict[str, list[bytes]]) -> None:
    """Publish each train's payloads in order on its own link; wait for every PUBACK."""
    async with mqtt_links(env, list(plan)) as links:
        for train, payloads in plan.items():
            for payload in payloads:
                await asyncio.wait_for(links[train].publish(f"trains/{train}/telemetry", payload).done, 15)


Taken = list[tuple[RejectedRecord, dict[str, Any]]]
"""Rejects taken off the queue, each with its message attributes."""


def rejects_of(env: dict[str, str], devices: set[str], done: Callable[[Taken], bool],
               timeout: float) -> Taken:
    """The rejects naming `devices` (or, for consumers' dead letters, whose raw event names them),
    taken off the queue until `done` says they are all there; others are made visible again."""
    sqs = client(env, "sqs")
    url = env["RAILPULSE_QUEUE_REJECTS_URL"]
    found: Taken = []
    others: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(found) and time.monotonic() < deadline:
            for message in sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                VisibilityTimeout=int(timeout) + 30, MessageAttributeNames=["All"],
            ).get("Messages", []):
                record = codec.decode_wire(message["Body"].encode(), RejectedRecord)
                if record.device in devices or any(d.encode() in record.raw for d in devices):
                    found.append((record, message.get("MessageAttributes", {})))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    others.append(message["ReceiptHandle"])
    finally:
        for handle in others:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    assert done(found), f"the rejects did not all arrive: {[(r.reason, r.detail) for r, _ in found]}"
    return found


def checkpoints_pass(env: dict[str, str], application: str, marks: dict[str, int]) -> None:
    """Wait until each shard's checkpoint of `application` is past its mark."""

    def past() -> dict[str, str] | None:
        table = leases(env, application)
        now = {shard: table[shard].checkpoint for shard in marks}
        ok = all(m.isdigit() and int(m) > marks[s] for s, m in now.items())
        return now if ok else None

    wait_for(past, CHECKPOINT_DEADLINE_S, f"{application}'s checkpoints past {marks}", every=1.0)


def warehouse_frames(env: dict[str, str], trains: list[str]) -> set[tuple[str, int]]:
    from railpulse_archiver.settings import ArchiverSettings
    from railpulse_archiver.warehouse import connect_warehouse
    from railpulse_shared.config import load_settings

    settings = load_settings(ArchiverSettings, env)
    with connect_warehouse(settings.warehouse_url, settings.warehouse_schema) as conn:
        rows = conn.execute("SELECT DISTINCT train, seq FROM telemetry WHERE train = ANY(%s)",
                            [trains]).fetchall()
    return {(t, s) for t, s in rows}


def lake_frames(env: dict[str, str], trains: list[str]) -> dict[tuple[str, int], set[int]]:
    """(train, seq) -> the sensor times stored for it (two for a sequence number reused by a
    restarted counter: two frames)."""
    out: dict[tuple[str, int], set[int]] = {}
    for train, seq, ts in lake_rows(env, "SELECT DISTINCT train, seq, epoch_ms(ts) FROM telemetry "
                                         "WHERE train IN (SELECT unnest(?))", [trains]):
        out.setdefault((train, seq), set()).add(ts)
    return out


def lake_identities(env: dict[str, str], trains: list[str]) -> set[tuple[str, int, int]]:
    """The (train, epoch, seq) of every frame of `trains` in the lake."""
    return {(t, e, s) for t, e, s in lake_rows(
        env, "SELECT DISTINCT train, epoch, seq FROM telemetry WHERE train IN (SELECT unnest(?))",
        [trains])}


def tracebacks(running: Running, since: float) -> list[str]:
    """Log lines of the services that carry a traceback, written since `since`."""
    bad = []
    for process in running.supervisor.processes:
        for line in written_lines(process.log):
            if "Traceback" not in line and '"exception"' not in line:
                continue
            try:
                stamp = json.loads(line).get("timestamp", "")
            except ValueError:
                bad.append(f"{process.name}: {line[:300]}")
                continue
            if not stamp or _epoch(stamp) >= since:
                bad.append(f"{process.name}: {line[:300]}")
    return bad


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_hostile_messages_end_as_rejects_with_their_bytes_and_no_shard_stalls(
    services: Running, trains: list[str]
) -> None:
    """Pass: each train's hostile messages (integers past 2^63, a time past year 9999, NUL and
    control characters and over-long channel names, 10,000 channels, invalid UTF-8, JSON nested
    10,000 deep) are each in the rejects queue with the expected reason and the exact bytes sent;
    a 1 MiB message is refused by the broker and costs none of its neighbours; a sequence number
    reused with other content is kept as a `seq_conflict` reject (not dropped); a counter that
    starts again under a new epoch is data; every good frame is in the lake and the warehouse; each
    shard's ingest checkpoint passes its last reject within 30 s; no service logs a traceback."""
    env = services.env
    started = time.time()
    first_epoch, second_epoch = 1001, 2002
    plan: dict[str, list[bytes]] = {}
    expected: dict[tuple[str, bytes], str] = {}
    good: set[tuple[str, int]] = set()
    for train in trains:
        payloads = [build_frame(train, 1, NOW_MS, BEARINGS, epoch=first_epoch)]
        for reason, payload in hostile_messages(train):
            payloads.append(payload)
            expected[(train, payload)] = reason
        payloads.append(build_frame(train, 2, NOW_MS + 1000, BEARINGS, epoch=first_epoch))
        conflict = build_frame(train, 2, NOW_MS + 1000, {**BEARINGS, "bearing_temp_1": 99.0},
                               epoch=first_epoch)
        payloads.append(conflict)
        expected[(train, conflict)] = "seq_conflict"
        payloads.append(frame_json(train, 3, {"pad": 1.0}, note="x" * (1 << 20)))  # 1 MiB
        payloads.append(build_frame(train, 3, NOW_MS + 2000, BEARINGS, epoch=first_epoch))
        # The train's storage is replaced: its counter starts again at 1 under a new epoch.
        payloads += [build_frame(train, seq, NOW_MS + 5000 + seq * 1000, BEARINGS, epoch=second_epoch)
                     for seq in (1, 2)]
        plan[train] = payloads
        good |= {(train, 1), (train, 2), (train, 3)}
    asyncio.run(publish_all(env, plan))

    rejects = rejects_of(env, set(trains), lambda found: {(r.device, r.raw) for r, _ in found}
                         >= set(expected), timeout=60)
    got = {(r.device, r.raw): r for r, _ in rejects}
    for (train, payload), reason in expected.items():
        record = got.get((train, payload))
        assert record is not None, f"no reject for {train}'s {reason} message ({payload[:60]!r})"
        assert record.reason.value == reason, (reason, record.reason, record.detail)
        assert record.raw_size == len(payload)
        assert "Traceback" not in record.detail and "internal error" not in record.detail
    assert len(rejects) == len(expected), "a message was rejected that should not have been"

    # Good frames: seq 1 and 2 twice (two epochs, two sensor times), seq 3 once; all in the lake.
    want = {(t, s): n for t in trains for s, n in ((1, 2), (2, 2), (3, 1))}

    def lake_complete() -> dict[tuple[str, int], set[int]] | None:
        frames = lake_frames(env, trains)
        return frames if all(len(frames.get(k, ())) == n for k, n in want.items()) else None

    frames = wait_for(lake_complete, 90, "every good frame in the lake",
                      supervisor=services.supervisor)
    assert set(frames) == good, f"unexpected frames in the lake: {set(frames) - good}"
    # The restarted counter's frames keep their epoch: (train, epoch, seq) tells them apart.
    assert lake_identities(env, trains) == {
        (t, e, s) for t in trains for e, s in
        ((first_epoch, 1), (first_epoch, 2), (first_epoch, 3), (second_epoch, 1), (second_epoch, 2))}
    wait_for(lambda: warehouse_frames(env, trains) >= good, 60, "the good frames in the warehouse",
             supervisor=services.supervisor)

    marks: dict[str, int] = {}
    for record, _ in rejects:
        if record.source.stream == env["RAILPULSE_STREAM_RAW"]:
            shard, seq = record.source.shard_id, int(record.source.sequence_number)
            marks[shard] = max(marks.get(shard, 0), seq)
    assert len(marks) == len(trains), f"rejects from {len(marks)} shards, trains on {len(trains)}"
    checkpoints_pass(env, "railpulse-ingest", marks)
    assert tracebacks(services, started) == []


def test_events_no_consumer_can_store_are_dead_lettered_and_every_consumer_moves_on(
    services: Running, trains: list[str]
) -> None:
    """Pass: accepted events on `telemetry` that no consumer can store (a sequence number past
    2^63, a NUL in a channel name), put there behind ingest's checks as a faulty producer might,
    are dead-lettered by the consumers that cannot handle them, with their bytes and a reason;
    the detector's and the archiver's checkpoints pass them within 30 s on every shard; a good
    frame after them is in the lake and the warehouse; no service logs a traceback."""
    env = services.env
    started = time.time()
    stream = env["RAILPULSE_STREAM_TELEMETRY"]
    by_shard = trains_by_shard(env, stream, 1, f"upstream-{RUN}")
    upstream = [t for ts in by_shard.values() for t in ts]
    now = int(time.time() * 1000)

    def event(train: str, seq: int, channel: str = "bearing_temp_1") -> bytes:
        # Encoding does not validate: this is what a producer that skipped the checks would send.
        return codec.encode(AcceptedFrame(train=train, seq=seq, ts_ms=now, received_ms=now,
                                          ingested_ms=now, readings={channel: Reading(40.0)}))

    bad = [(t, event(t, 2**64)) for t in upstream] + [(t, event(t, 5, "a\u0000b")) for t in upstream]
    positions = put_records(env, stream, bad)
    later = [(t, event(t, 6)) for t in upstream]
    put_records(env, stream, later)

    # The consumers that cannot store or score an event dead-letter it: the detector and the
    # archiver both refuse a sequence number past 2^63, the archiver a NUL (the detector may score
    # it: a channel it does not know). Nothing is skipped silently.
    huge, nul = positions[: len(upstream)], positions[len(upstream):]
    needed = {**{key: {"detector", "archiver"} for key in huge}, **{key: {"archiver"} for key in nul}}

    def consumers(found: Taken) -> dict[tuple[str, str], set[str]]:
        out: dict[tuple[str, str], set[str]] = {}
        for record, attributes in found:
            key = (record.source.shard_id, record.source.sequence_number)
            out.setdefault(key, set()).add(attributes.get("consumer", {}).get("StringValue", ""))
        return out

    rejects = rejects_of(env, set(upstream), lambda found: all(
        want <= consumers(found).get(key, set()) for key, want in needed.items()), timeout=60)
    raw_at = dict(zip(positions, (body for _, body in bad), strict=True))
    for record, _ in rejects:
        key = (record.source.shard_id, record.source.sequence_number)
        assert record.source.stream == stream and key in raw_at, f"a dead letter not put here: {key}"
        assert record.raw == raw_at[key], "the dead letter carries the event's bytes"

    marks = {}
    for shard, seq in positions:
        marks[shard] = max(marks.get(shard, 0), int(seq))
    for application in KCL_APPLICATIONS:
        if application in ("railpulse-detector", "railpulse-archiver-telemetry"):
            checkpoints_pass(env, application, marks)

    good = {(t, 6) for t in upstream}
    wait_for(lambda: set(lake_frames(env, upstream)) >= good, 60, "the later frames in the lake",
             supervisor=services.supervisor)
    assert set(lake_frames(env, upstream)) == good, "an unstorable event reached the lake"
    wait_for(lambda: warehouse_frames(env, upstream) >= good, 60, "the later frames in the warehouse",
             supervisor=services.supervisor)
    assert tracebacks(services, started) == []


def railpulse_query(env: dict[str, str], sql: str, out: Path) -> Any:
    """`railpulse query SQL --out FILE.parquet`, the command a user runs, against the stack."""
    command = [str(Path(sys.executable).parent / "railpulse"), "query", "--out", str(out), sql]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 3), f"railpulse query failed: {done.stderr[-2000:]}"
    return pq.read_table(out) if done.returncode == 0 else None


def test_rejects_outlive_the_queue_in_the_lakes_rejects_table_with_their_bytes(
    services: Running, trains: list[str], tmp_path: Path
) -> None:
    """Pass: hostile messages published by the trains (device → broker → ingest) are rejected
    into the queue; the queue is then purged, which is how SQS's expiry (14 days at most) is
    played here; every one of them is still in the lake's `rejects` table, found by
    `railpulse query`, with its reason, device, topic, `telemetry-raw` position and exactly the
    bytes sent; no service logs a traceback."""
    env = services.env
    started = time.time()
    mark = f"lake-{RUN}"
    deep = b"[" * 10_000 + b"]" * 10_000
    expected: dict[tuple[str, bytes], str] = {}
    plan: dict[str, list[bytes]] = {}
    for train in trains:
        messages = [
            ("schema_violation", frame_json(train, 2**63, BEARINGS, mark=mark)),
            ("schema_violation", frame_json(train, 20, {"a\u0000b": 1.0}, mark=mark)),
            ("malformed_json", frame_json(train, 21, BEARINGS, mark=mark)
             .replace(b'"bearing_temp_1"', b'"bearing_\xff\xfe"')),
            ("malformed_json", b"Invalid JSON Data " + mark.encode() + b" " + train.encode()),
            ("malformed_json", b'{"kind":"frame.v1","train":"' + train.encode() + b'","m":"'
             + mark.encode() + b'","x":' + deep + b"}"),
        ]
        plan[train] = [payload for _, payload in messages]
        expected |= {(train, payload): reason for reason, payload in messages}
    asyncio.run(publish_all(env, plan))

    # Rejected: each is on the queue (taken off it here) ...
    taken = rejects_of(env, set(trains), lambda found: {(r.device, r.raw) for r, _ in found}
                       >= set(expected), timeout=60)
    positions = {(r.device, r.raw): r.source for r, _ in taken if (r.device, r.raw) in expected}
    # ... and then the queue lets go of everything, as it does after its retention period.
    sqs = client(env, "sqs")
    url = env["RAILPULSE_QUEUE_REJECTS_URL"]
    sqs.purge_queue(QueueUrl=url)
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert not left.get("Messages"), "the queue still holds messages after the purge"

    names = ", ".join(f"'{t}'" for t in trains)
    sql = ("SELECT device, reason, topic, raw_kind, record_stream, record_shard, record_seq, raw, "
           f"raw_size, consumer FROM rejects WHERE device IN ({names}) AND dt >= DATE "
           f"'{time.strftime('%Y-%m-%d', time.gmtime(started - 86_400))}'")

    def archived() -> list[dict[str, Any]] | None:
        table = railpulse_query(env, sql, tmp_path / "rejects.parquet")
        rows = [] if table is None else table.to_pylist()
        got = {(r["device"], r["raw"]) for r in rows}
        return rows if got >= set(expected) else None

    rows = wait_for(archived, 90, "every reject in the lake's rejects table",
                    supervisor=services.supervisor)
    by_message: dict[tuple[str, bytes], list[dict[str, Any]]] = {}
    for row in rows:
        by_message.setdefault((row["device"], row["raw"]), []).append(row)
    for (train, payload), reason in expected.items():
        row = by_message[(train, payload)][0]
        assert row["raw"] == payload and row["raw_size"] == len(payload)
        assert row["reason"] == reason, (reason, row["reason"])
        assert row["topic"] == f"trains/{train}/telemetry" and row["raw_kind"] == "payload"
        assert row["consumer"] is None
        source = positions[(train, payload)]
        assert (row["record_stream"], row["record_shard"], row["record_seq"]) == (
            env["RAILPULSE_STREAM_RAW"], source.shard_id, source.sequence_number)
    # Nothing but what was sent (a message may appear twice: the lake's copy is at least once).
    unexpected = {k for k in by_message if k not in expected and mark.encode() in k[1]}
    assert not unexpected, f"rejects in the lake that were not sent: {unexpected}"
    assert tracebacks(services, started) == []
