"""Graceful shutdown on SIGTERM (Fargate's stop signal) and SIGINT.

    async with GracefulShutdown() as shutdown:
        while not shutdown.requested:
            batch = await shutdown.wait_for(queue.receive())   # None once shutdown is asked
            ...
    # leaving the block: the caller drains, checkpoints and returns

Fargate waits `stopTimeout` (30 s by default) after SIGTERM before SIGKILL; `drain_timeout`
bounds the drain so it ends inside that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

import structlog

__all__ = ["GracefulShutdown"]

logger = structlog.get_logger()
_T = TypeVar("_T")


class GracefulShutdown:
    """Turns SIGTERM/SIGINT into an event that work loops watch."""

    def __init__(
        self,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
        drain_timeout: float = 25.0,
    ) -> None:
        self.signals = signals
        self.drain_timeout = drain_timeout
        self.event = asyncio.Event()
        self.received: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, sig: signal.Signals | None = None) -> None:
        if not self.event.is_set():
            self.received = sig
            logger.info("shutdown_requested", signal=sig.name if sig else None)
            self.event.set()

    async def __aenter__(self) -> GracefulShutdown:
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            loop.add_signal_handler(sig, self.request, sig)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            loop.remove_signal_handler(sig)

    async def wait_for(self, work: Awaitable[_T]) -> _T | None:
        """Await `work` unless shutdown comes first; then cancel it and return None."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.event.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def drain(self, work: Awaitable[_T]) -> _T | None:
        """Finish in-flight work within `drain_timeout`; None if it did not finish in time."""
        try:
            return await asyncio.wait_for(work, self.drain_timeout)
        except TimeoutError:
            logger.warning("drain_timeout", seconds=self.drain_timeout)
            return None
