"""The real KCL MultiLangDaemon against the local stack: records put are read, checkpoints land, and
with `log_requests` its GetRecords calls can be timed from its log (bench-latency reads them)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from stackhelpers import aws_client
from waiting import written_lines

from bench._kcl_requests import get_records_stats
from railpulse_shared.multilang import KclApplication, start_daemon

pytestmark = pytest.mark.stack


def _wait(pred, timeout: float, interval: float = 0.25) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def test_kcl_processor_reads_records_and_checkpoints(stack: dict[str, str], tmp_path: Path) -> None:
    stream = stack["RAILPULSE_STREAM_TELEMETRY"]
    app = KclApplication(
        application_name=f"kcl-probe-{uuid.uuid4().hex[:8]}",
        stream_name=stream,
        processor_module="railpulse_devstack.kcl_probe",
        region=stack["AWS_REGION"],
        worker_id="kcl-probe-worker",
        endpoint_url=stack["AWS_ENDPOINT_URL"],
        initial_position="TRIM_HORIZON",
        shard_sync_ms=1000,
        idle_time_ms=200,
        heap_mb=256,
        log_requests=True,
    )
    out = tmp_path / "records.jsonl"
    out.touch()
    kinesis = aws_client(stack, "kinesis")
    ddb = aws_client(stack, "dynamodb")
    log_path = tmp_path / "kcl.log"
    with log_path.open("wb") as log:
        daemon = start_daemon(
            app, tmp_path, log=log, env={**os.environ, **stack, "RAILPULSE_KCL_PROBE_OUT": str(out)}
        )
    try:
        # Put first: the processor reads from TRIM_HORIZON, whenever its leases arrive.
        markers = [uuid.uuid4().hex for _ in range(12)]
        put: dict[str, tuple[str, str]] = {}
        for m in markers:
            resp = kinesis.put_record(
                StreamName=stream, Data=m.encode(), PartitionKey=f"train-{m[:4]}"
            )
            put[m] = (resp["ShardId"], resp["SequenceNumber"])

        shards = {s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]}

        def leased() -> bool:
            try:
                items = ddb.scan(TableName=app.application_name)["Items"]
            except ddb.exceptions.ResourceNotFoundException:
                return False
            owned = {i["leaseKey"]["S"] for i in items if "leaseOwner" in i}
            return shards <= owned

        assert _wait(leased, timeout=90), (
            f"shards never leased; see {log_path}:\n{log_path.read_text()[-3000:]}"
        )

        def seen() -> set[str]:
            lines = [json.loads(x) for x in written_lines(out)]
            return {base64.b64decode(x["data"]).decode() for x in lines}

        assert _wait(lambda: set(markers) <= seen(), timeout=60), (
            f"processor saw {len(set(markers) & seen())}/{len(markers)}; see {log_path}"
        )

        last: dict[str, str] = {}
        for shard, seq in put.values():
            if shard not in last or int(seq) > int(last[shard]):
                last[shard] = seq

        def checkpointed() -> bool:
            items = {
                i["leaseKey"]["S"]: i for i in ddb.scan(TableName=app.application_name)["Items"]
            }
            return all(
                shard in items
                and items[shard].get("checkpoint", {}).get("S", "").isdigit()
                and int(items[shard]["checkpoint"]["S"]) >= int(seq)
                for shard, seq in last.items()
            )

        assert _wait(checkpointed, timeout=30), "checkpoints never reached the lease table"

        calls = get_records_stats(log_path)
        assert set(calls["per_shard"]) == shards, calls
        assert min(calls["per_shard"].values()) >= 2, calls  # polled, timed, polled again
        assert calls["call_ms"]["max"] < 10_000 and calls["retries"] == 0, calls
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
