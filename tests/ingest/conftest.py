"""Fixtures of the ingest tests: a fresh set of AWS resources per test on moto's server.

The AWS tests talk HTTP to `moto.server.ThreadedMotoServer` (tests/conftest.py's `moto_url`; no
decorators on the feature path); each test gets its own streams, queue and bucket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ingest_support import Stack, make_stack


@pytest.fixture
async def stack(moto_url: str) -> AsyncIterator[Stack]:
    yield await make_stack(moto_url)
