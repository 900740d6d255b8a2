"""Session fixtures the archiver tests start themselves: moto's real server and a PostgreSQL.

Both are real servers on free ports (no in-process mocks on the feature path), started once per
session and torn down at its end (moto is the session's `moto_url` from tests/conftest.py). Each test gets its own bucket, Glue database and warehouse schema.
Helpers live in `archiver_fixtures` (a module name no other test folder uses).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from archiver_fixtures import ensure_credentials, fresh_settings
from waiting import free_port

from railpulse_archiver.settings import ArchiverSettings


@pytest.fixture(scope="session")
def moto_endpoint(moto_url: str) -> str:
    """The session's moto server (tests/conftest.py), with credentials for botocore and the KCL."""
    ensure_credentials()
    return moto_url


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
