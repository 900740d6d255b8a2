"""After a failover, learn what the previous owner of a shard already forwarded.

The dedup state lives in memory, and a worker killed between PutRecords and its checkpoint leaves
frames on `telemetry` that the KCL will replay to the next owner. Each accepted frame carries its
source position, so the next owner reads `telemetry` back from the arrival time of its checkpoint
record (minus `margin_s`, for redeliveries around it), bounded by `max_s`, and marks every frame
that came from its shard as seen (its train, epoch, seq and content digest, as the previous owner
marked it) before it processes anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_ingest.dedup import ContentDigest, Deduplicator
from railpulse_shared import codec
from railpulse_shared.contracts import AcceptedFrame
from railpulse_shared.errors import ContractError, TransientError

__all__ = ["recover", "recovery_start"]

logger = structlog.get_logger()


async def recovery_start(
    kinesis: Any,
    *,
    stream: str,
    shard_id: str,
    checkpoint: str | None,
    max_s: float,
    margin_s: float = 60.0,
) -> datetime:
    """Where to start reading `telemetry` back: the checkpoint record's arrival, bounded."""
    now = datetime.now(UTC)
    earliest = now - timedelta(seconds=max_s)
    if not checkpoint or not checkpoint.isdigit():  # TRIM_HORIZON, LATEST, SHARD_END
        return earliest
    try:
        iterator = await kinesis.get_shard_iterator(
            StreamName=stream,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=checkpoint,
        )
        response = await kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)
    except (ClientError, BotoCoreError) as exc:
        logger.warning("checkpoint_time_unknown", error=str(exc))
        return earliest
    if not response["Records"]:
        return earliest
    arrived: datetime = response["Records"][0]["ApproximateArrivalTimestamp"]
    return max(earliest, arrived - timedelta(seconds=margin_s))


async def recover(
    kinesis: Any,
    *,
    telemetry: str,
    shard_id: str,
    since: datetime,
    dedup: Deduplicator,
    digest: ContentDigest,
) -> int:
    """Mark every frame forwarded from `shard_id` since `since`; the number marked."""
    marked = 0
    try:
        shards = await _shards(kinesis, telemetry)
        for shard in shards:
            iterator = (
                await kinesis.get_shard_iterator(
                    StreamName=telemetry,
                    ShardId=shard,
                    ShardIteratorType="AT_TIMESTAMP",
                    Timestamp=since,
                )
            )["ShardIterator"]
            while iterator:
                response = await kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                for record in response["Records"]:
                    marked += _mark(record["Data"], shard_id, dedup, digest)
                iterator = response.get("NextShardIterator")
                if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                    break
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"reading back {telemetry}: {exc}") from exc
    logger.info("dedup_recovered", since=since.isoformat(), frames=marked, shards=len(shards))
    return marked


def _mark(data: bytes, shard_id: str, dedup: Deduplicator, digest: ContentDigest) -> int:
    try:
        event = codec.decode_event(data)
    except ContractError:
        return 0
    if not isinstance(event, AcceptedFrame) or event.source is None:
        return 0
    if event.source.shard_id != shard_id:
        return 0
    dedup.mark(event.train, event.epoch, event.seq, digest.of_accepted(event))
    return 1


async def _shards(kinesis: Any, stream: str) -> list[str]:
    shards: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"NextToken": token} if token else {"StreamName": stream}
        response = await kinesis.list_shards(**kwargs)
        shards.extend(s["ShardId"] for s in response["Shards"])
        token = response.get("NextToken")
        if not token:
            return shards
