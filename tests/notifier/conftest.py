"""Fixtures for the notifier tests (helpers in ntkit, importable as this directory is on the path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ntkit import Resources


@pytest.fixture
def res(stack: dict[str, str]) -> Iterator[Resources]:
    """Own queue (with DLQ), alarm table and events stream on the running stack."""
    resources = Resources.create(stack)
    yield resources
    resources.delete()
