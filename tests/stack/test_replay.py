"""Replay from a point in time, as docs/runbooks/iterator-age.md says, step by step, with the
real KCL MultiLangDaemon against the local stack: a consumer that read a stream to its end is
stopped, its leases are deleted, and started again with `RAILPULSE_KCL_INITIAL_POSITION=
AT_TIMESTAMP` and `RAILPULSE_KCL_INITIAL_TIMESTAMP`: it reads again exactly the records that
arrived from that moment on."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stackhelpers import aws_client
from waiting import wait_until, written_lines

from railpulse_shared.config import load_settings
from railpulse_shared.multilang import KclSettings, kcl_application, start_daemon

pytestmark = pytest.mark.stack


def _seen(out: Path) -> list[str]:
    return [base64.b64decode(json.loads(x)["data"]).decode() for x in written_lines(out)]


def _run(stack: dict[str, str], app_name: str, stream: str, out: Path, run_dir: Path,
         extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """The consumer as a service starts it: settings from the environment, then the daemon."""
    env = {**os.environ, **stack, "RAILPULSE_KCL_PROBE_OUT": str(out),
           "RAILPULSE_KCL_SHARD_SYNC_MS": "1000", "RAILPULSE_KCL_HEAP_MB": "256", **extra}
    settings = load_settings(KclSettings, env)
    app = kcl_application(settings, application_name=app_name, stream_name=stream,
                          processor_module="railpulse_devstack.kcl_probe")
    out.touch()
    log = (run_dir / f"{out.stem}.log").open("wb")
    return start_daemon(app, run_dir / out.stem, log=log, env=env)


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.terminate()  # SIGTERM, as ECS stops a task: processors shut down and checkpoint
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(timeout=10)


def test_a_consumer_replays_a_stream_from_a_timestamp(stack: dict[str, str], tmp_path: Path) -> None:
    kinesis, ddb = aws_client(stack, "kinesis"), aws_client(stack, "dynamodb")
    stream, app = f"replay-{uuid.uuid4().hex[:8]}", f"replay-app-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    wait_until(lambda: kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
          ["StreamStatus"] == "ACTIVE", 30, "the stream")
    before = [f"before-{i}" for i in range(5)]
    after = [f"after-{i}" for i in range(5)]
    for data in before:
        kinesis.put_record(StreamName=stream, Data=data.encode(), PartitionKey="train-1")
    # The replay point: a whole second (the KCL's resolution) at least a second after `before`.
    at = datetime.fromtimestamp(int(time.time()) + 2, UTC)
    wait_until(lambda: time.time() >= at.timestamp() + 0.2, 5, "the replay point to pass")
    for data in after:
        kinesis.put_record(StreamName=stream, Data=data.encode(), PartitionKey="train-1")

    # The consumer reads everything once and checkpoints (a bad deployment, say).
    first = tmp_path / "first.jsonl"
    daemon = _run(stack, app, stream, first, tmp_path, {})
    try:
        wait_until(lambda: set(before + after) <= set(_seen(first)), 90, "the first read")
    finally:
        _stop(daemon)

    # Runbook step 1: the service is stopped (above). Step 2: delete its leases, so no
    # checkpoint wins over the initial position.
    items = ddb.scan(TableName=app, ProjectionExpression="leaseKey")["Items"]
    assert items, "the consumer kept leases"
    for item in items:
        ddb.delete_item(TableName=app, Key={"leaseKey": item["leaseKey"]})
    assert ddb.scan(TableName=app)["Items"] == []

    # Step 3: start it with the replay point.
    second = tmp_path / "second.jsonl"
    daemon = _run(stack, app, stream, second, tmp_path, {
        "RAILPULSE_KCL_INITIAL_POSITION": "AT_TIMESTAMP",
        "RAILPULSE_KCL_INITIAL_TIMESTAMP": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    try:
        wait_until(lambda: set(after) <= set(_seen(second)), 90, "the replay")
        # Step 4: it read from that moment on, in order, and nothing before it. A shard is read
        # in order, so once a record put now is seen, a record from before the point would be.
        kinesis.put_record(StreamName=stream, Data=b"last", PartitionKey="train-1")
        wait_until(lambda: "last" in _seen(second), 30, "the record put after the replay")
        assert _seen(second) == [*after, "last"]
    finally:
        _stop(daemon)
    kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)


def test_a_consumer_stopped_with_its_process_group_checkpoints_where_it_stopped(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """A local supervisor stops a service with SIGTERM to its whole process group: the daemon
    and its record processors at once. The processors leave their shutdown to the daemon, which
    asks each to checkpoint, so the checkpoint is the last record read. (They used to die of the
    signal first: a detector restarted that way replayed everything since its last snapshot.)"""
    kinesis, ddb = aws_client(stack, "kinesis"), aws_client(stack, "dynamodb")
    stream, app = f"stop-{uuid.uuid4().hex[:8]}", f"stop-app-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    wait_until(lambda: kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
          ["StreamStatus"] == "ACTIVE", 30, "the stream")
    for i in range(5):
        kinesis.put_record(StreamName=stream, Data=f"r{i}".encode(), PartitionKey="train-1")

    out = tmp_path / "seen.jsonl"
    # No checkpoint but the one at shutdown.
    daemon = _run(stack, app, stream, out, tmp_path, {"RAILPULSE_KCL_PROBE_CHECKPOINT_S": "3600"})
    try:
        wait_until(lambda: len(_seen(out)) == 5, 90, "the records read")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
    last = max((json.loads(x)["sequence_number"] for x in written_lines(out)), key=int)
    (lease,) = ddb.scan(TableName=app)["Items"]
    assert lease["checkpoint"]["S"] == last, "the processor checkpointed when the daemon stopped"
    kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
