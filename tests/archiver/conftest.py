"""Session fixtures the archiver tests start themselves: moto's real server and a PostgreSQL.

Both are real servers on free ports (no in-process mocks on the feature path), started once per
session and torn down at its end. Each test gets its own bucket, Glue database and warehouse schema.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from railpulse_archiver.settings import ArchiverSettings

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s")
        time.sleep(0.05)


def ensure_credentials() -> None:
    """moto accepts any credentials, but botocore and the KCL want some."""
    for key, value in _CREDENTIALS.items():
        os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    ensure_credentials()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def fresh_settings(moto_endpoint: str) -> ArchiverSettings:
    """Fresh names (bucket, Glue database, queue, warehouse schema): one moto serves the session."""
    suffix = uuid.uuid4().hex[:10]
    bucket = f"lake-{suffix}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    sqs.create_queue(QueueName=f"rejects-{suffix}")
    return ArchiverSettings(
        aws_endpoint_url=moto_endpoint,
        bucket_lake=bucket,
        glue_database=f"railpulse_{suffix}",
        queue_rejects=f"rejects-{suffix}",
        flush_retry_s=5.0,
        warehouse_schema=f"wh_{suffix}",
    )


@pytest.fixture
def settings(moto_endpoint: str) -> ArchiverSettings:
    return fresh_settings(moto_endpoint)


def _server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL 15: initdb in a temp dir, trust auth, a free loopback port."""
    if shutil.which("initdb") is None:
        pytest.fail("PostgreSQL (initdb) is not installed: make setup installs it")
    base = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = free_port()
    run = [*_server_user()]
    subprocess.run(
        [
            *run,
            "initdb",
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "railpulse",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    )
    subprocess.run(
        [*run, "pg_ctl", "-D", str(data), "-l", str(base / "pg.log"), "-o", options, "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://railpulse@127.0.0.1:{port}/postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE railpulse")
        yield f"postgresql://railpulse@127.0.0.1:{port}/railpulse"
    finally:
        subprocess.run(
            [*run, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)
