"""Secrets the stack generates once and keeps in its state folder (owner-only files)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["kept_secret", "write_private"]


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (mode 0600 from the start), replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def kept_secret(path: Path) -> str:
    """The secret kept in `path`, generated (URL-safe, 256 bits) the first time it is asked for."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_private(tmp, value + "\n")
    try:
        os.link(tmp, path)  # atomic, and never over a secret another process made meanwhile
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value
