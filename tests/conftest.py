"""Session fixtures shared by every test directory.

`stack`: the running local stack's env (see `railpulse_devstack.env`). It starts the stack once
per session if it is not already running, and stops it at the end of the session (also when
tests fail) only if it started it. Tests marked `@pytest.mark.stack` get it automatically.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import load_config
from railpulse_devstack.env import stack_env


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
