"""Read-only stream readers: poll every shard of a Kinesis stream from a recent position.

No lease, no checkpoint: the console only views. It starts at `AT_TIMESTAMP` (now - lookback),
keeps one iterator per shard, follows resharding (a closed shard's children are read from their
start) and re-positions after an expired iterator. Errors never end a reader: they are shown on
the data-health page and the next poll tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_console.errors import FeedError
from railpulse_console.state import now_ms
from railpulse_console.views import StreamStatus
from railpulse_shared import codec
from railpulse_shared.contracts import AnyEvent
from railpulse_shared.errors import ContractError

__all__ = ["ShardReader"]

logger = structlog.get_logger()

_RELIST_S = 30.0
"""How often the shard list is refreshed even when no shard closed (scale-out is rare)."""
_MAX_BACKOFF_S = 5.0


class ShardReader:
    """Polls one stream and hands each decoded event to `deliver`."""

    def __init__(
        self,
        kinesis: Any,
        stream: str,
        deliver: Callable[[AnyEvent], None],
        *,
        lookback_s: float,
        poll_s: float,
        limit: int = 1000,
        relist_s: float = _RELIST_S,
    ) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.deliver = deliver
        self.lookback_s = lookback_s
        self.poll_s = poll_s
        self.limit = limit
        self.relist_s = relist_s
        self.status = StreamStatus(stream=stream)
        self._iterators: dict[str, str] = {}
        self._last_seq: dict[str, str] = {}
        self._closed: set[str] = set()
        self._known: set[str] = set()
        self._behind: dict[str, int] = {}
        self._newest_arrival_ms: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.poll_s
        relisted = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if not self._iterators or loop.time() - relisted > self.relist_s:
                    await self._list_shards()
                    relisted = loop.time()
                busy = await self.poll_once()
                self.status.error = None
                backoff = self.poll_s
            except FeedError as exc:
                self.status.error = str(exc)
                logger.warning("feed_error", stream=self.stream, error=str(exc))
                busy = False
                backoff = min(_MAX_BACKOFF_S, backoff * 2)
            if not busy:
                # Catching up (records returned, still behind) polls again at once; otherwise wait.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)

    async def poll_once(self) -> bool:
        """One GetRecords per open shard; True if any shard is still behind the tip."""
        busy = False
        for shard_id in list(self._iterators):
            busy |= await self._poll_shard(shard_id)
        now = now_ms()
        self.status.last_poll_ms = now
        self.status.millis_behind_latest = max(self._behind.values(), default=None)
        if self._newest_arrival_ms is not None:
            self.status.newest_arrival_age_ms = max(0, now - self._newest_arrival_ms)
        return busy

    async def _list_shards(self) -> None:
        try:
            shards: list[dict[str, Any]] = []
            params: dict[str, Any] = {"StreamName": self.stream}
            while True:
                page = await self.kinesis.list_shards(**params)
                shards.extend(page.get("Shards", []))
                token = page.get("NextToken")
                if not token:
                    break
                params = {"NextToken": token}
        except (ClientError, BotoCoreError) as exc:
            raise FeedError(f"list_shards {self.stream}: {exc}") from exc
        first_listing = not self._known
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._known:
                continue
            self._known.add(shard_id)
            # Shards there at boot start at the lookback; shards born later (resharding) hold
            # only new records, so they are read from their start.
            at = "AT_TIMESTAMP" if first_listing else "TRIM_HORIZON"
            await self._position(shard_id, at)
        self.status.shards = len(self._iterators)

    async def _position(self, shard_id: str, kind: str) -> None:
        params: dict[str, Any] = {
            "StreamName": self.stream,
            "ShardId": shard_id,
            "ShardIteratorType": kind,
        }
        if kind == "AT_TIMESTAMP":
            params["Timestamp"] = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.lookback_s)
        elif kind == "AFTER_SEQUENCE_NUMBER":
            params["StartingSequenceNumber"] = self._last_seq[shard_id]
        try:
            response = await self.kinesis.get_shard_iterator(**params)
        except (ClientError, BotoCoreError) as exc:
            raise FeedError(f"get_shard_iterator {self.stream}/{shard_id}: {exc}") from exc
        self._iterators[shard_id] = response["ShardIterator"]

    async def _poll_shard(self, shard_id: str) -> bool:
        try:
            response = await self.kinesis.get_records(
                ShardIterator=self._iterators[shard_id], Limit=self.limit
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExpiredIteratorException":
                last = "AFTER_SEQUENCE_NUMBER" if shard_id in self._last_seq else "LATEST"
                await self._position(shard_id, last)
                return True
            raise FeedError(f"get_records {self.stream}/{shard_id}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise FeedError(f"get_records {self.stream}/{shard_id}: {exc}") from exc
        records: list[dict[str, Any]] = response.get("Records", [])
        for record in records:
            self._handle(record)
        if records:
            self._last_seq[shard_id] = records[-1]["SequenceNumber"]
        behind = int(response.get("MillisBehindLatest", 0))
        self._behind[shard_id] = behind
        following = response.get("NextShardIterator")
        if following is None:
            # The shard was closed by a reshard: its children appear on the next listing.
            del self._iterators[shard_id]
            self._behind.pop(shard_id, None)
            self._closed.add(shard_id)
            await self._list_shards()
            return True
        self._iterators[shard_id] = following
        return bool(records) and behind > 0

    def _handle(self, record: dict[str, Any]) -> None:
        self.status.records += 1
        arrived = record.get("ApproximateArrivalTimestamp")
        if isinstance(arrived, dt.datetime):
            self._newest_arrival_ms = int(arrived.timestamp() * 1000)
        try:
            event = codec.decode_event(record["Data"])
        except ContractError as exc:
            self.status.decode_errors += 1
            logger.debug("undecodable_record", stream=self.stream, error=exc.message)
            return
        self.deliver(event)
