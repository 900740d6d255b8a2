"""Session fixtures the archiver tests start themselves: moto's real server and a PostgreSQL.

Both are real servers on free ports (no in-process mocks on the feature path), started once per
session and torn down at its end (moto is the session's `moto_url` from tests/conftest.py). Each test gets its own bucket, Glue database and warehouse schema.
Helpers live in `archiver_fixtures` (a module name no other test folder uses).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from archiver_fixtures import ensure_credentials, fresh_settings
from waiting import free_port

from railpulse_archiver.settings import ArchiverSettings
from railpulse_devstack import postgres
from railpulse_devstack.config import StackConfig, repo_root


@pytest.fixture(scope="session")
def moto_endpoint(moto_url: str) -> str:
    """The session's moto server (tests/conftest.py), with credentials for botocore and the KCL."""
    ensure_credentials()
    return moto_url


@pytest.fixture
def settings(moto_endpoint: str) -> ArchiverSettings:
    return fresh_settings(moto_endpoint)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL 15 on a free loopback port, set up as the local stack sets up its
    own (railpulse_devstack.postgres): the loads run as the service role `railpulse`, with its
    password, neither superuser nor able to create databases or roles."""
    state = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
    state.chmod(0o755)  # the server's system user (when we are root) reaches its folder
    config = StackConfig(
        root=repo_root(),
        state_dir=state,
        moto_port=0,
        mqtt_port=0,
        pg_port=free_port(),
        iot_data_port=0,
        fleet=(),
    )
    postgres.start(config)
    try:
        yield postgres.dsn(config)
    finally:
        postgres.stop(config)
        shutil.rmtree(state, ignore_errors=True)
