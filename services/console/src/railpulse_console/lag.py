"""Consumer lag per stream: how far each service's KCL checkpoints are behind the tip.

Read from what the KCL already writes: each application's DynamoDB lease table holds the
checkpointed sequence number per shard. The record just after a checkpoint is the oldest one the
service has not finished; its arrival time gives the lag (like CloudWatch's IteratorAge, but for
the committed position). A Scan and one GetRecords per shard every few seconds: read-only, and
well inside a shard's 5 reads per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_console.state import now_ms
from railpulse_console.views import ConsumerStatus

__all__ = ["ConsumerLag", "parse_consumers"]

logger = structlog.get_logger()

_SENTINELS = frozenset({"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END"})


def parse_consumers(spec: str) -> tuple[tuple[str, str], ...]:
    """`app=stream,app2=stream2` → ((app, stream), (app2, stream2))."""
    pairs: list[tuple[str, str]] = []
    for item in spec.split(","):
        app, sep, stream = item.strip().partition("=")
        if sep and app.strip() and stream.strip():
            pairs.append((app.strip(), stream.strip()))
    return tuple(pairs)


class ConsumerLag:
    def __init__(
        self, dynamodb: Any, kinesis: Any, consumers: tuple[tuple[str, str], ...], *, poll_s: float
    ) -> None:
        self.dynamodb = dynamodb
        self.kinesis = kinesis
        self.consumers = consumers
        self.poll_s = poll_s
        self.status = {
            app: ConsumerStatus(application=app, stream=stream) for app, stream in consumers
        }

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for app, stream in self.consumers:
                await self.refresh(app, stream)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)

    async def refresh(self, app: str, stream: str) -> None:
        status = self.status[app]
        try:
            leases = await self._leases(app)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                status.leases, status.lag_ms, status.error = 0, None, None
                status.note = "not running here (no lease table)"
                return
            status.error = f"lease table: {exc}"
            return
        except BotoCoreError as exc:
            status.error = f"lease table: {exc}"
            return
        status.leases = len(leases)
        status.owners = len({lease.get("leaseOwner", {}).get("S", "") for lease in leases} - {""})
        lags: list[int] = []
        pending = 0
        try:
            for lease in leases:
                shard_id = lease["leaseKey"]["S"]
                checkpoint = lease.get("checkpoint", {}).get("S", "TRIM_HORIZON")
                if checkpoint in _SENTINELS:
                    pending += checkpoint != "SHARD_END"
                    continue
                lags.append(await self._lag_after(stream, shard_id, checkpoint))
        except (ClientError, BotoCoreError) as exc:
            status.error = f"{stream}: {exc}"
            return
        status.lag_ms = max(lags, default=None)
        status.error = None
        status.note = f"{pending} shard(s) not checkpointed yet" if pending else ""

    async def _leases(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": table}
        while True:
            page = await self.dynamodb.scan(**params)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _lag_after(self, stream: str, shard_id: str, sequence: str) -> int:
        iterator = (
            await self.kinesis.get_shard_iterator(
                StreamName=stream,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=sequence,
            )
        )["ShardIterator"]
        records = (await self.kinesis.get_records(ShardIterator=iterator, Limit=1))["Records"]
        if not records:
            return 0  # caught up
        arrived = records[0].get("ApproximateArrivalTimestamp")
        if not isinstance(arrived, dt.datetime):
            return 0
        return max(0, now_ms() - int(arrived.timestamp() * 1000))
