"""The real KCL MultiLangDaemon drives the archiver: every frame once, across a kill -9 and restart.

moto is served by hypercorn here (the KCL's Java client speaks h2c, which moto's own server does
not). The daemon is killed hard after its first flushes, more frames are put, and a restarted
daemon (same worker id, so it takes its lease back at once) must finish the job without a
duplicate: the replay from the last checkpoint meets the shard manifest.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import msgspec
import pyarrow.parquet as pq
import pytest
from archiver_fixtures import ensure_credentials, fresh_settings
from waiting import free_port, wait_until

from railpulse_archiver.manifest import ShardManifest, manifest_key
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records
from railpulse_shared.multilang import kcl_application, start_daemon

_SERVE = """
import asyncio, sys
from hypercorn.asyncio import serve
from hypercorn.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
config = Config()
config.bind = [f"127.0.0.1:{sys.argv[1]}"]
config.accesslog = None
asyncio.run(serve(DomainDispatcherApplication(create_backend_app), config, mode="wsgi"))
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def h2_moto() -> Iterator[str]:
    ensure_credentials()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 30, "moto on hypercorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def _committed(s3: object, settings: ArchiverSettings, shard: str) -> str | None:
    try:
        body = s3.get_object(  # type: ignore[attr-defined]
            Bucket=settings.bucket_lake, Key=manifest_key(settings.stream_telemetry, shard)
        )["Body"].read()
    except Exception:
        return None
    committed = msgspec.json.decode(body, type=ShardManifest).committed
    return committed[0] if committed else None


def test_real_daemon_archives_every_frame_once_across_a_kill(h2_moto: str, tmp_path: Path) -> None:
    base = fresh_settings(h2_moto)
    suffix = base.bucket_lake.removeprefix("lake-")
    settings = msgspec.structs.replace(
        base,
        stream_telemetry=f"telemetry-{suffix}",
        kcl_worker_id="archiver-test-worker",
        kcl_shard_sync_ms=1000,
        kcl_idle_time_ms=200,
        kcl_shutdown_grace_ms=3000,
    )
    kinesis = boto3.client("kinesis", endpoint_url=h2_moto, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=h2_moto, region_name="us-east-1")
    kinesis.create_stream(StreamName=settings.stream_telemetry, ShardCount=1)
    wait_until(
        lambda: (
            kinesis.describe_stream_summary(StreamName=settings.stream_telemetry)[
                "StreamDescriptionSummary"
            ]["StreamStatus"]
            == "ACTIVE"
        ),
        30,
        "stream",
    )
    frames = list(
        fleet_records(trains=3, start_ms=1_780_000_000_000, duration_s=3000, period_s=10, shards=1)
    )

    def put(chunk: list) -> str:  # type: ignore[type-arg]
        last = ""
        for i in range(0, len(chunk), 100):
            response = kinesis.put_records(
                StreamName=settings.stream_telemetry,
                Records=[
                    {"Data": r.data, "PartitionKey": r.partition_key} for r in chunk[i : i + 100]
                ],
            )
            last = response["Records"][-1]["SequenceNumber"]
        return last

    app = kcl_application(
        settings,
        application_name=f"railpulse-archiver-telemetry-{suffix}",
        stream_name=settings.stream_telemetry,
        processor_module="railpulse_archiver.processor",
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": h2_moto,
        "RAILPULSE_ARCHIVER_STREAM": "telemetry",
        "RAILPULSE_STREAM_TELEMETRY": settings.stream_telemetry,
        "RAILPULSE_BUCKET_LAKE": settings.bucket_lake,
        "RAILPULSE_GLUE_DATABASE": settings.glue_database,
        "RAILPULSE_QUEUE_REJECTS": settings.queue_rejects,
        "RAILPULSE_BUFFER_MAX_RECORDS": "120",
        "RAILPULSE_BUFFER_MAX_AGE_S": "1",
        "RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "0.5",
        "RAILPULSE_LOG_LEVEL": "warning",
    }
    shard = kinesis.list_shards(StreamName=settings.stream_telemetry)["Shards"][0]["ShardId"]
    log = (tmp_path / "daemon.log").open("wb")

    half = len(frames) // 2
    first_last = put(frames[:half])
    daemon = start_daemon(app, tmp_path, log=log, env=env)
    try:
        wait_until(
            lambda: _committed(s3, settings, shard) == first_last, 120, "first half archived"
        )
        os.killpg(daemon.pid, signal.SIGKILL)  # the whole worker dies: JVM and record processor
        daemon.wait(10)
        last = put(frames[half:])
        daemon = start_daemon(app, tmp_path, log=log, env=env)
        wait_until(lambda: _committed(s3, settings, shard) == last, 120, "second half archived")
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        log.close()

    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=settings.bucket_lake, Prefix="telemetry/")["Contents"]
    ]
    seen: list[tuple[str, int, str]] = []
    for key in keys:
        body = s3.get_object(Bucket=settings.bucket_lake, Key=key)["Body"].read()
        seen.extend(
            (r["train"], r["seq"], r["channel"])
            for r in pq.read_table(
                io.BytesIO(body), columns=["train", "seq", "channel"]
            ).to_pylist()
        )
    want = [
        (f["train"], f["seq"], c)
        for f in (msgspec.json.decode(r.data) for r in frames)
        for c in f["readings"]
    ]
    assert len(seen) == len(want)
    assert sorted(seen) == sorted(want)


def _daemons_using(folder: Path) -> list[int]:
    """PIDs of JVMs whose command line names a properties file in `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "MultiLangDaemon" in cmdline and str(folder) in cmdline:
            found.append(int(proc.name))
    return found


@contextmanager
def _archiver_main(endpoint: str, state_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`railpulse_archiver.main` as the task runs it, its output in `state_dir/main.log`; killed
    with its daemons at the end if a test left them running."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "RAILPULSE_KCL_STATE_DIR": str(state_dir),
        "RAILPULSE_KCL_SHUTDOWN_GRACE_MS": "2000",
        "RAILPULSE_LOG_LEVEL": "warning",
    }
    with (state_dir / "main.log").open("wb") as log:
        main = subprocess.Popen(
            [sys.executable, "-m", "railpulse_archiver.main"], env=env, stdout=log, stderr=log
        )
        try:
            yield main
        finally:
            if main.poll() is None:
                main.kill()
            for pid in _daemons_using(state_dir):
                os.kill(pid, signal.SIGKILL)


def test_main_runs_both_daemons_and_forwards_sigterm(h2_moto: str, tmp_path: Path) -> None:
    with _archiver_main(h2_moto, tmp_path) as main:
        wait_until(lambda: len(_daemons_using(tmp_path)) == 2, 30, "two daemons")
        names = sorted(p.name for p in tmp_path.glob("*.properties"))
        assert names == [
            "railpulse-archiver-events.properties",
            "railpulse-archiver-telemetry.properties",
        ]
        main.send_signal(signal.SIGTERM)
        assert main.wait(40) == 0
        wait_until(lambda: not _daemons_using(tmp_path), 20, "daemons gone")


def test_main_exits_non_zero_when_a_daemon_dies(h2_moto: str, tmp_path: Path) -> None:
    """A daemon that dies unasked ends the task with an error (ECS then replaces it), and the
    other daemon is stopped with it."""
    with _archiver_main(h2_moto, tmp_path) as main:
        daemons = wait_until(
            lambda: found if len(found := _daemons_using(tmp_path)) == 2 else None,
            30,
            "two daemons",
        )
        os.kill(daemons[0], signal.SIGKILL)
        assert main.wait(40) == 1
        wait_until(lambda: not _daemons_using(tmp_path), 20, "the other daemon gone")
    assert '"daemon_exited"' in (tmp_path / "main.log").read_text()
