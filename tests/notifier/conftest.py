"""Fixtures for the notifier tests (helpers in ntkit, importable as this directory is on the path)."""

from __future__ import annotations

import pytest
from ntkit import Resources


@pytest.fixture
def res(stack: dict[str, str]) -> Resources:
    """Own queue (with DLQ), alarm table and events stream on the running stack."""
    return Resources.create(stack)
