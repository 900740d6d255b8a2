"""Progress of a long command on stderr (stdout carries results): steps, and a heartbeat.

    with Progress("railpulse export") as progress:
        progress.step("reading train-003 from s3://railpulse-lake")
        ...
        progress.step("writing 1,234 readings to t3.parquet")

Each step is printed when it starts; a step still running after `quiet_s` gets a line every
`every_s` with its elapsed time and, when given, what `detail()` says (e.g. which components of
the stack are up), so a slow step is never silent.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(
        self,
        prog: str,
        *,
        stream: TextIO | None = None,
        quiet_s: float = 2.0,
        every_s: float = 5.0,
        detail: Callable[[], str] | None = None,
    ) -> None:
        self.prog = prog
        self.stream = stream if stream is not None else sys.stderr
        self.quiet_s = quiet_s
        self.every_s = every_s
        self.detail = detail
        self._lock = threading.Lock()
        self._text = ""
        self._began = self._step_began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)

    def step(self, text: str) -> None:
        with self._lock:
            self._text = text
            self._step_began = time.monotonic()
            self._say(f"{text} ...")

    def done(self, text: str) -> None:
        with self._lock:
            self._text = ""
            self._say(f"{text} ({time.monotonic() - self._began:.1f} s)")

    def _say(self, text: str) -> None:
        self.stream.write(f"{self.prog}: {text}\n")
        self.stream.flush()

    def _beat(self) -> None:
        next_at, step = self.quiet_s, self._step_began
        while not self._stop.wait(0.2):
            with self._lock:
                if not self._text:
                    continue
                if step != self._step_began:
                    next_at, step = self.quiet_s, self._step_began
                elapsed = time.monotonic() - self._step_began
                if elapsed < next_at:
                    continue
                next_at = elapsed + self.every_s
                extra = ""
                if self.detail is not None:
                    try:
                        extra = self.detail()
                    except Exception as exc:  # a status probe must never break the command
                        extra = f"status unknown: {type(exc).__name__}"
                self._say(f"  ... {self._text} ({elapsed:.0f} s{'; ' + extra if extra else ''})")

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
