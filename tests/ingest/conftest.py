"""Fixtures of the ingest tests: moto's server, and a fresh set of AWS resources per test.

The AWS tests talk HTTP to `moto.server.ThreadedMotoServer` (no decorators on the feature path);
each test gets its own streams, queue and bucket, so tests never see each other's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from ingest_support import Stack, make_stack
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def stack(moto_url: str) -> AsyncIterator[Stack]:
    yield await make_stack(moto_url)
