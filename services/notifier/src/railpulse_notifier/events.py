"""Alarm transitions appended to Kinesis `events`, micro-batched across concurrent trains.

Callers `await publish(transitions)`; one flusher gathers what arrives within `linger_s` into one
PutRecords call (partition key: train, so a train's transitions stay ordered in one shard), and
retries only the records Kinesis reports failed. Delivery is at least once: consumers de-duplicate
on `(alarm_id, version)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_notifier.errors import StoreUnavailableError
from railpulse_shared.codec import encode
from railpulse_shared.contracts import AlarmTransition

__all__ = ["EventPublisher"]

logger = structlog.get_logger()

_MAX_RECORDS = 500
"""PutRecords takes at most 500 records."""


class EventPublisher:
    def __init__(
        self, kinesis: Any, stream: str, *, linger_s: float = 0.005, max_attempts: int = 5
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream
        self._linger_s = linger_s
        self._max_attempts = max_attempts
        self._pending: list[tuple[AlarmTransition, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, transitions: Sequence[AlarmTransition]) -> None:
        if not transitions:
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-publisher")
        loop = asyncio.get_running_loop()
        futures = []
        for t in transitions:
            fut: asyncio.Future[None] = loop.create_future()
            self._pending.append((t, fut))
            futures.append(fut)
        self._wake.set()
        await asyncio.gather(*futures)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._linger_s)
            self._wake.clear()
            while self._pending:
                chunk, self._pending = self._pending[:_MAX_RECORDS], self._pending[_MAX_RECORDS:]
                await self._flush(chunk)

    async def _flush(self, chunk: list[tuple[AlarmTransition, asyncio.Future[None]]]) -> None:
        todo = chunk
        for attempt in range(self._max_attempts):
            try:
                resp = await self._kinesis.put_records(
                    StreamName=self._stream,
                    Records=[{"Data": encode(t), "PartitionKey": t.train} for t, _ in todo],
                )
            except (ClientError, BotoCoreError) as err:
                logger.warning("events.put_failed", error=str(err), attempt=attempt)
                resp = None
            if resp is not None:
                failed = []
                for (t, fut), result in zip(todo, resp["Records"], strict=True):
                    if "ErrorCode" in result:
                        failed.append((t, fut))
                    elif not fut.done():
                        fut.set_result(None)
                todo = failed
                if not todo:
                    return
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        error = StoreUnavailableError(f"{len(todo)} transitions not appended to {self._stream}")
        for _, fut in todo:
            if not fut.done():
                fut.set_exception(error)
