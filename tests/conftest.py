"""Session fixtures shared by every test directory.

`aws`: moto's real HTTP server on a free loopback port, for tests that need the AWS APIs but not
the whole local stack (they create their own uniquely named resources).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from railpulse_shared.config import CommonSettings


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
