"""Run services as separate processes, each with its own environment, as Fargate runs tasks.

Each process gets its own session (so a signal reaches its whole tree, e.g. a KCL daemon and its
per-shard children), a log file, and on stop SIGTERM first — the graceful path the services
implement — then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["Process", "Supervisor"]


@dataclass
class Process:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    signalled: bool = False
    """Stopped on purpose (`Supervisor.stop`): its exit is no failure."""

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 12, max_bytes: int = 16_384) -> list[str]:
        """The last lines of its log (what a process that died said last)."""
        try:
            with self.log.open("rb") as f:
                f.seek(max(0, self.log.stat().st_size - max_bytes))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def death(self) -> str:
        """How it ended and what it said last, for a person: one line, then its log's tail."""
        tail = "\n".join(f"    | {line}" for line in self.log_tail())
        return f"{self.name} exited with code {self.returncode}; the end of {self.log}:\n{tail}"


class Supervisor:
    """Starts processes and stops them all, in reverse order, however the run ends."""

    def __init__(self, log_dir: Path, grace_s: float = 20.0) -> None:
        self.log_dir = log_dir
        self.grace_s = grace_s
        self.processes: list[Process] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        process = Process(name, list(argv), dict(env), self.log_dir / f"{name}.log")
        with process.log.open("ab") as log:
            process.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def failed(self) -> list[Process]:
        """Processes that exited on their own (not stopped by `stop`) with an error."""
        return [p for p in self.processes if not p.signalled and p.returncode not in (None, 0)]

    def stop(self, process: Process, sig: signal.Signals = signal.SIGTERM) -> None:
        if process.alive and process.popen is not None:
            process.signalled = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, sig)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        deadline = time.monotonic() + self.grace_s
        for process in reversed(self.processes):
            if process.popen is None:
                continue
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop(process, signal.SIGKILL)
                process.popen.wait(5)
        # A KCL daemon's children live in its session: make sure none outlives it.
        for process in self.processes:
            if process.popen is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
