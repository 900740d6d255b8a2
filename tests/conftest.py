"""Session fixtures shared by every test directory.

`moto_url` / `aws`: moto's real HTTP server on a free loopback port, for tests that need the AWS
APIs but not the whole local stack (they create their own uniquely named resources).

`stack`: the running local stack's env (see `railpulse_devstack.env`). It starts the stack once
per session if it is not already running, and stops it at the end of the session (also when
tests fail) only if it started it. Tests marked `@pytest.mark.stack` get it automatically.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import load_config
from railpulse_devstack.env import stack_env
from railpulse_shared.config import CommonSettings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("stack") is not None:
            item.add_marker(pytest.mark.usefixtures("stack"))


@pytest.fixture(scope="session")
def stack() -> Iterator[dict[str, str]]:
    config = load_config()
    result = devstack.up(config)
    try:
        yield stack_env(config)
    finally:
        if result.started:
            devstack.down(config)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> CommonSettings:
    """Settings pointing at the moto server, with test credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return CommonSettings(aws_endpoint_url=moto_url)
