"""Accepted frames → Kinesis `telemetry` with PutRecords (partition key = train: per-train order).

A PutRecords call can partly fail (throttling, internal errors): only the failed entries are sent
again, with jittered exponential backoff, up to `max_attempts`. What still failed is returned, so
the handler remembers only what landed and reports the rest as transient (never checkpointed).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "MAX_RECORD_BYTES", "Forwarder"]

logger = structlog.get_logger()

MAX_BATCH_ENTRIES = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
"""Kinesis' record limit: data plus partition key."""


class Forwarder:
    def __init__(
        self, kinesis: Any, stream: str, *, max_attempts: int = 6, backoff_s: float = 0.1
    ) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.throttled = 0

    async def put(self, entries: Sequence[tuple[bytes, str]]) -> tuple[set[int], str]:
        """Put (data, partition key) entries; the indexes that still failed, and the last error."""
        failed: set[int] = set()
        error = ""
        for chunk in _chunks(entries):
            chunk_failed, chunk_error = await self._put_chunk(entries, chunk)
            failed |= chunk_failed
            error = chunk_error or error
        return failed, error

    async def _put_chunk(
        self, entries: Sequence[tuple[bytes, str]], pending: list[int]
    ) -> tuple[set[int], str]:
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                delay = min(5.0, self.backoff_s * 2 ** (attempt - 2))
                await asyncio.sleep(random.uniform(delay / 2, delay))
            try:
                response = await self.kinesis.put_records(
                    StreamName=self.stream,
                    Records=[
                        {"Data": entries[i][0], "PartitionKey": entries[i][1]} for i in pending
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                # The whole call failed (throttled, 5xx, network): retry all of it.
                error = f"{type(exc).__name__}: {exc}"
                self.throttled += "Throughput" in error or "Throttl" in error
                logger.warning("put_records_failed", attempt=attempt, error=error)
                continue
            if not response.get("FailedRecordCount"):
                return set(), ""
            still = []
            for index, result in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in result:
                    still.append(index)
                    error = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
            self.throttled += sum(1 for _ in still)
            logger.info("put_records_partial", attempt=attempt, failed=len(still), error=error)
            pending = still
        return set(pending), error


def _chunks(entries: Sequence[tuple[bytes, str]]) -> list[list[int]]:
    """Index lists within PutRecords' limits (500 entries, 5 MiB), in order."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, (data, key) in enumerate(entries):
        n = len(data) + len(key.encode())
        if current and (len(current) >= MAX_BATCH_ENTRIES or size + n > MAX_BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    if current:
        chunks.append(current)
    return chunks
