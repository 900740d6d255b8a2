"""Test helpers shared by every test folder: wait on a condition with a deadline; a free port;
the complete lines of a file another process is still appending to."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["free_port", "wait_until", "written_lines"]

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str = "", *, interval: float = 0.1
) -> T:
    """Poll `check` until it returns something truthy and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or check}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def written_lines(path: Path) -> list[str]:
    """The non-empty lines of a file being appended to, without a last line still half-written."""
    complete = path.read_text(errors="replace").rpartition("\n")[0]
    return [line for line in complete.splitlines() if line.strip()]
