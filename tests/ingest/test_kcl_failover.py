"""Two real KCL workers on a four-shard stream; one is killed with -9 mid-batch.

Its leases move to the other worker, nothing is lost, and the frames it had forwarded but not
checkpointed (replayed by the KCL to the new owner) are removed before `telemetry`. The workers
checkpoint only every 60 s, so at the kill everything they forwarded is still un-checkpointed:
the replay is certain, not a matter of timing. It runs on the local stack (moto over hypercorn:
the KCL's Java client speaks h2c), with its own streams, queue, bucket and lease table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from ingest_support import envelope, frame

from railpulse_devstack.env import s3_endpoint
from railpulse_ingest.main import application
from railpulse_ingest.settings import APPLICATION_NAME, IngestSettings
from railpulse_shared import codec
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import AcceptedFrame
from railpulse_shared.multilang import start_daemon

pytestmark = pytest.mark.stack

TRAINS = [f"train-{i:02d}" for i in range(16)]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    stop = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        stop.wait(every)  # poll the condition again shortly


def test_failover_loses_nothing_and_forwards_no_duplicates(
    stack: dict[str, str], tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]  # own streams, queue, bucket and lease table on the shared stack
    env = {
        **os.environ,
        **stack,
        "RAILPULSE_STREAM_RAW": f"raw-{suffix}",
        "RAILPULSE_STREAM_TELEMETRY": f"telemetry-{suffix}",
        "RAILPULSE_QUEUE_REJECTS": f"rejects-{suffix}",
        "RAILPULSE_BUCKET_STATE": f"state-{suffix}",
        "RAILPULSE_KCL_SHARD_SYNC_MS": "1000",
        "RAILPULSE_KCL_IDLE_TIME_MS": "200",
        "RAILPULSE_KCL_FAILOVER_MS": "10000",
        "RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "60",
        "RAILPULSE_KCL_HEAP_MB": "256",
        "RAILPULSE_METRICS_SINK": "stderr",
        "RAILPULSE_LOG_LEVEL": "info",
    }
    settings = load_settings(IngestSettings, env)
    table = f"{APPLICATION_NAME}-{suffix}"
    kinesis, sqs, s3, dynamodb = (
        boto3.client(
            s,
            endpoint_url=s3_endpoint(stack) if s == "s3" else stack["AWS_ENDPOINT_URL"],
            region_name=stack["AWS_REGION"],
        )
        for s in ("kinesis", "sqs", "s3", "dynamodb")
    )
    kinesis.create_stream(StreamName=settings.stream_raw, ShardCount=4)
    kinesis.create_stream(StreamName=settings.stream_telemetry, ShardCount=2)
    sqs.create_queue(QueueName=settings.queue_rejects)
    s3.create_bucket(Bucket=settings.bucket_state)

    sent: list[tuple[str, int]] = []

    def put(seqs: range) -> None:
        records = []
        for train in TRAINS:
            for seq in seqs:
                data = envelope(codec.encode(frame(train, seq)), train)
                records.append({"Data": data, "PartitionKey": train})
                sent.append((train, seq))
        for start in range(0, len(records), 500):
            kinesis.put_records(
                StreamName=settings.stream_raw, Records=records[start : start + 500]
            )

    def forwarded() -> list[AcceptedFrame]:
        out = []
        for shard in kinesis.list_shards(StreamName=settings.stream_telemetry)["Shards"]:
            it = kinesis.get_shard_iterator(
                StreamName=settings.stream_telemetry,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            while it:
                response = kinesis.get_records(ShardIterator=it, Limit=10_000)
                out.extend(
                    msgspec.json.decode(r["Data"], type=AcceptedFrame) for r in response["Records"]
                )
                if not response["Records"]:
                    break
                it = response["NextShardIterator"]
        return out

    def owners() -> dict[str, str]:
        try:
            items = dynamodb.scan(TableName=table)["Items"]
        except dynamodb.exceptions.ResourceNotFoundException:
            return {}
        return {i["leaseKey"]["S"]: i.get("leaseOwner", {}).get("S", "") for i in items}

    workers: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    for name in ("worker-a", "worker-b"):
        worker = msgspec.structs.replace(settings, kcl_worker_id=name)
        app = msgspec.structs.replace(application(worker), application_name=table)
        logs[name] = tmp_path / f"{name}.log"
        workers[name] = start_daemon(
            app,
            tmp_path / name,
            log=logs[name].open("wb"),
            env={**env, "RAILPULSE_KCL_WORKER_ID": name},
        )
    try:
        put(range(0, 20))

        # A worker that holds a lease, has started its processor and whose shard has frames on
        # telemetry: none of them is checkpointed yet, so once it dies they are replayed.
        def forwarding_worker() -> str | None:
            held = owners()
            if len(held) < 4 or not all(held.values()):
                return None
            flowing = {f.source.shard_id for f in forwarded() if f.source}
            for name, log in logs.items():
                started = [
                    line
                    for line in log.read_text(errors="replace").splitlines()
                    if line.startswith("{") and '"shard_initialized"' in line
                ]
                for shard, owner in held.items():
                    if owner == name and shard in flowing and any(shard in x for x in started):
                        return name
            return None

        victim = wait_for(forwarding_worker, 180, "a worker forwarding from its shards")
        survivor = ({"worker-a", "worker-b"} - {victim}).pop()
        put(range(20, 60))  # a fresh burst: the victim is mid-batch when it dies
        wait_for(lambda: len(forwarded()) > 16 * 20, 60, "the burst to start flowing")
        os.killpg(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait(10)
        put(range(60, 70))

        wait_for(
            lambda: set(owners().values()) == {survivor}, 90, f"{survivor} to take every lease"
        )
        wait_for(lambda: {(f.train, f.seq) for f in forwarded()} >= set(sent), 90, "every frame")
        frames = forwarded()
        counts = Counter((f.train, f.seq) for f in frames)
        assert {k: n for k, n in counts.items() if n > 1} == {}, "duplicates reached telemetry"
        assert set(counts) == set(sent)
        log = logs[survivor].read_text(errors="replace")
        # The survivor replayed the victim's un-checkpointed records and recognised them.
        assert '"event": "dedup_recovered"' in log and '"duplicates_dropped"' in log
        assert (
            sqs.get_queue_attributes(
                QueueUrl=sqs.get_queue_url(QueueName=settings.queue_rejects)["QueueUrl"],
                AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]["ApproximateNumberOfMessages"]
            == "0"
        )
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
