"""Helpers of the worker fault tests: trains placed on chosen shards, frames fed at a steady rate
(PutRecords as the IoT rule writes them, or MQTT), and what the tests judge by: KCL lease tables,
the `telemetry` stream read back, the detector's model snapshots, the rejects queue, process logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stackrun import client, lake_rows, mqtt_links, wait_for
from waiting import written_lines

from railpulse_cli.demo.supervisor import Process
from railpulse_edge.frames import build_frame
from railpulse_shared import codec
from railpulse_shared.contracts import AcceptedFrame, RejectedRecord, RuleEnvelope

BEARINGS = [f"bearing_temp_{i}" for i in range(1, 9)]
CHANNELS = len(BEARINGS)
"""Readings per frame here, hence lake rows per frame."""

Frame = tuple[str, int, bytes]
"""(train, seq, frame JSON as the train publishes it)."""


def calm(seq: int) -> dict[str, float]:
    """Eight axle bearings on a slow periodic cycle: a shape the forest learns within its warm-up,
    with no false alarm (checked on 120 trains' seeds), so a later outlier is the only alarm."""
    return {
        name: round(40.0 + 0.2 * i + 0.5 * math.sin(2 * math.pi * seq / 20 + i), 3)
        for i, name in enumerate(BEARINGS, start=1)
    }


def frame(train: str, seq: int, start_ms: int, readings: dict[str, float] | None = None) -> Frame:
    """One frame of `train`; sensor time advances 250 ms per sequence number from `start_ms`."""
    return train, seq, build_frame(train, seq, start_ms + seq * 250, readings or calm(seq))


def envelope(principal: str, payload: bytes) -> bytes:
    """A `telemetry-raw` record as the IoT rule writes it."""
    return codec.encode(RuleEnvelope(topic=f"trains/{principal}/telemetry", principal=principal,
                                     received_ms=int(time.time() * 1000), payload=payload))


def put_records(env: dict[str, str], stream: str, records: Sequence[tuple[str, bytes]],
                kinesis: Any = None) -> list[tuple[str, str]]:
    """PutRecords (partition key, data) in order; each record's (shard, sequence number)."""
    kinesis = kinesis or client(env, "kinesis")
    out: list[tuple[str, str]] = []
    for start in range(0, len(records), 500):
        chunk = records[start:start + 500]
        response = kinesis.put_records(StreamName=stream, Records=[
            {"PartitionKey": key, "Data": data} for key, data in chunk])
        assert response["FailedRecordCount"] == 0, response
        out += [(r["ShardId"], r["SequenceNumber"]) for r in response["Records"]]
    return out


def open_shards(env: dict[str, str], stream: str) -> dict[str, tuple[int, int]]:
    """The open shards of `stream` and their hash key ranges."""
    shards = client(env, "kinesis").list_shards(StreamName=stream)["Shards"]
    return {s["ShardId"]: (int(s["HashKeyRange"]["StartingHashKey"]),
                           int(s["HashKeyRange"]["EndingHashKey"]))
            for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]}


def trains_by_shard(env: dict[str, str], stream: str, per_shard: int, prefix: str) -> dict[
        str, list[str]]:
    """Fresh train names, `per_shard` on each open shard of `stream` (the partition key is the
    train: its MD5 picks the shard)."""
    shards = open_shards(env, stream)
    placed: dict[str, list[str]] = {shard: [] for shard in shards}
    while any(len(t) < per_shard for t in placed.values()):
        train = f"{prefix}-{uuid.uuid4().hex[:8]}"
        key = int(hashlib.md5(train.encode()).hexdigest(), 16)
        shard = next(s for s, (lo, hi) in shards.items() if lo <= key <= hi)
        if len(placed[shard]) < per_shard:
            placed[shard].append(train)
    return placed


class Sink(AbstractAsyncContextManager["Sink"]):
    """Where a `Feeder` sends frames; `send` returns once they are accepted, with where each
    landed when the sink knows it ((shard, sequence number) in the raw stream)."""

    async def send(self, frames: Sequence[Frame]) -> list[tuple[str, str]] | None:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        return None


class KinesisSink(Sink):
    """Frames as the IoT rule forwards them: PutRecords of rule envelopes, keyed by train."""

    def __init__(self, env: dict[str, str], stream: str) -> None:
        self.env, self.stream = env, stream
        self.kinesis = client(env, "kinesis")

    async def send(self, frames: Sequence[Frame]) -> list[tuple[str, str]]:
        records = [(train, envelope(train, body)) for train, _, body in frames]
        return await asyncio.to_thread(put_records, self.env, self.stream, records, self.kinesis)


class MqttSink(Sink):
    """Frames published by each train over its own MQTT link (QoS 1: accepted on PUBACK)."""

    def __init__(self, env: dict[str, str], trains: Sequence[str]) -> None:
        self._links = mqtt_links(env, trains)
        self.links: dict[str, Any] = {}

    async def __aenter__(self) -> MqttSink:
        self.links = await self._links.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._links.__aexit__(None, None, None)

    async def send(self, frames: Sequence[Frame]) -> None:
        published = [self.links[train].publish(f"trains/{train}/telemetry", body)
                     for train, _, body in frames]
        await asyncio.wait_for(asyncio.gather(*(p.done for p in published)), 15)
        return None


@dataclass
class Feeder:
    """Every train sends one frame per tick, `rate_hz` ticks a second, from a thread, until
    `stop()`; `sent` is every frame accepted, in order."""

    trains: Sequence[str]
    sink: Sink
    rate_hz: float
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 60_000)
    sent: list[tuple[str, int]] = field(default_factory=list)
    landed: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    """Where each frame landed in the raw stream, when the sink says."""
    last_seq: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> Feeder:
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()
        return self

    def wait_seq(self, seq: int, timeout: float = 120.0) -> None:
        """Until every train has sent frame `seq`."""
        wait_for(lambda: self._check() or self.last_seq >= seq, timeout,
                 f"every train to send frame {seq}", every=0.1)

    def stop(self) -> int:
        """Stop after the current tick; the last sequence number every train sent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._check()
        return self.last_seq

    def _check(self) -> None:
        if self._error is not None:
            raise AssertionError(f"the feeder failed: {self._error!r}") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # surfaced to the test by _check
            self._error = exc

    async def _feed(self) -> None:
        async with self.sink:
            tick = time.monotonic()
            while not self._stop.is_set():
                seq = self.last_seq + 1
                frames = [frame(t, seq, self.start_ms) for t in self.trains]
                landed = await self.sink.send(frames)
                self.sent += [(t, s) for t, s, _ in frames]
                self.landed |= dict(zip(self.sent[-len(frames):], landed or (), strict=False))
                self.last_seq = seq
                tick += 1.0 / self.rate_hz
                await asyncio.sleep(max(0.0, tick - time.monotonic()))


# -- what the tests judge by --------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    owner: str | None
    checkpoint: str
    """A sequence number, or TRIM_HORIZON / SHARD_END."""


def leases(env: dict[str, str], application: str) -> dict[str, Lease]:
    """The KCL lease table of `application`: shard -> (owner, checkpoint)."""
    items = client(env, "dynamodb").scan(TableName=application, ConsistentRead=True)["Items"]
    return {i["leaseKey"]["S"]: Lease(i.get("leaseOwner", {}).get("S"),
                                      i.get("checkpoint", {}).get("S", "")) for i in items}


def stream_events(env: dict[str, str], stream: str, since: datetime) -> list[Any]:
    """Every event on `stream` that arrived since `since`, shard by shard, in stream order."""
    kinesis = client(env, "kinesis")
    events: list[Any] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="AT_TIMESTAMP",
                                        Timestamp=since)["ShardIterator"]
        while it:
            response = kinesis.get_records(ShardIterator=it, Limit=10_000)
            events += [codec.decode_event(r["Data"]) for r in response["Records"]]
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            it = response.get("NextShardIterator")
    return events


def forwarded(env: dict[str, str], since: datetime, trains: Iterable[str]) -> list[AcceptedFrame]:
    """The accepted frames of `trains` on `telemetry` since `since`, in stream order."""
    wanted = set(trains)
    return [e for e in stream_events(env, env["RAILPULSE_STREAM_TELEMETRY"], since)
            if isinstance(e, AcceptedFrame) and e.train in wanted]


def lake_frames(env: dict[str, str], trains: Iterable[str]) -> Counter[tuple[str, int]]:
    """How many lake rows each (train, seq) of `trains` has."""
    rows = lake_rows(env, "SELECT train, seq, count(*) FROM telemetry "
                          "WHERE train IN (SELECT unnest(?)) GROUP BY ALL", [list(trains)])
    return Counter({(t, s): n for t, s, n in rows})


def assert_in_lake_once(env: dict[str, str], sent: Iterable[tuple[str, int]], timeout: float,
                        **wait: Any) -> None:
    """Every frame of `sent` is in the lake with all its readings, once; nothing else is there
    for these trains."""
    want = set(sent)
    trains = {t for t, _ in want}

    def complete() -> Counter[tuple[str, int]] | None:
        counts = lake_frames(env, trains)
        return counts if set(counts) >= want else None

    got = wait_for(complete, timeout, f"{len(want)} frames in the lake", **wait)
    assert set(got) == want, f"frames never sent: {sorted(set(got) - want)[:10]}"
    wrong = {k: n for k, n in got.items() if n != CHANNELS}
    assert wrong == {}, f"frames not stored exactly once ({CHANNELS} rows each): {wrong}"


def model_state(env: dict[str, str], shard: str) -> dict[str, tuple[int, int]]:
    """The detector's saved models of `shard`: train -> (last sequence number learned, number of
    frames learned)."""
    from railpulse_detector.model import ModelBank
    from railpulse_shared.catalogue import load_catalogue

    s3 = client(env, "s3")
    try:
        data = s3.get_object(Bucket=env["RAILPULSE_BUCKET_STATE"],
                             Key=f"detector/snapshots/{shard}.bin")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    bank = ModelBank(load_catalogue(None))
    bank.loads(data)
    out = {}
    for kind in bank.kinds.values():
        if kind.fleet is not None:
            for train, i in kind.index.items():
                out[train] = (bank.last_seq[train], int(kind.fleet.thresholder.count[i]))
    return out


def log_events(process: Process, *names: str) -> list[dict[str, Any]]:
    """The structured log events of those names in a service's log (its KCL children's too),
    in order."""
    out = []
    for line in written_lines(process.log):
        if line.startswith("{") and any(f'"{name}"' in line for name in names):
            record = json.loads(line)
            if record.get("event") in names:
                out.append(record)
    return out


def freeze(process: Process) -> None:
    """SIGSTOP a service's whole process group: its state cannot move while it is inspected."""
    assert process.popen is not None
    os.killpg(process.popen.pid, signal.SIGSTOP)


def thaw(process: Process) -> None:
    assert process.popen is not None
    os.killpg(process.popen.pid, signal.SIGCONT)


def take_rejects(env: dict[str, str], stream: str, positions: set[tuple[str, str]],
                 timeout: float) -> dict[tuple[str, str], tuple[RejectedRecord, dict[str, Any]]]:
    """The rejects of the records of `stream` at `positions` (shard, sequence number), with their
    message attributes, taken off the queue. Other messages are left for their owners: each is received
    at most once here (it stays invisible while this runs), then made visible again, so this
    does not push them towards the queue's dead-letter redrive."""
    sqs = client(env, "sqs")
    url = env["RAILPULSE_QUEUE_REJECTS_URL"]
    found: dict[tuple[str, str], tuple[RejectedRecord, dict[str, Any]]] = {}
    others: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while set(found) < positions and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           VisibilityTimeout=max(30, int(timeout) + 30),
                                           MessageAttributeNames=["All"]).get("Messages", [])
            for message in messages:
                record = codec.decode_wire(message["Body"].encode(), RejectedRecord)
                key = (record.source.shard_id, record.source.sequence_number)
                if record.source.stream == stream and key in positions:
                    found[key] = (record, message.get("MessageAttributes", {}))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    others.append(message["ReceiptHandle"])
    finally:
        for handle in others:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    missing = positions - set(found)
    assert not missing, f"no reject for {len(missing)} poison records: {sorted(missing)}"
    return found


def since_now() -> datetime:
    """A timestamp for reading a stream back from now (a second early: arrival times are coarse)."""
    return datetime.fromtimestamp(time.time() - 1, UTC)


def owners(env: dict[str, str], application: str) -> dict[str, set[str]]:
    """The lease table as owner -> shards (None for an unowned lease)."""
    out: dict[str, set[str]] = {}
    for shard, lease in leases(env, application).items():
        out.setdefault(str(lease.owner), set()).add(shard)
    return out


def consuming(process: Process, shard: str) -> bool:
    """Whether a worker's processor for `shard` is up: started, and not stopped since."""
    events = [e["event"] for e in log_events(process, "shard_initialized", "lease_lost",
                                             "shutdown_requested", "shard_ended")
              if e.get("shard_id") == shard]
    return bool(events) and events[-1] == "shard_initialized"


def shared_by(env: dict[str, str], application: str, workers: dict[str, Process],
              each: int = 1) -> bool:
    """Each worker (worker id -> process) holds `each` shards, and its processors are up."""
    held = owners(env, application)
    return set(held) == set(workers) and all(
        len(shards) == each and all(consuming(workers[owner], s) for s in shards)
        for owner, shards in held.items())
