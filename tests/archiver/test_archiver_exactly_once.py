"""Every accepted frame is in the lake exactly once after the consumer dies mid-flush and restarts.

The KCL is simulated faithfully where it matters: batches go through the real `ShardProcessor`
(checkpoint policy included), a crash abandons the process with no shutdown hook, and the restart
replays every record after the last checkpoint, with different batch sizes and buffering hints so
flush boundaries differ from the first run's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import boto3
import msgspec
import pyarrow.parquet as pq
import pytest
from archiver_kclfake import Checkpointer, Input, after, kcl_records

from railpulse_archiver.handler import ArchiverHandler
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.store import S3Store
from railpulse_shared.batch import StreamRecord
from railpulse_shared.kcl import ShardProcessor

SHARD = "shardId-000000000000"
START_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z: the frames span three hour partitions


class Crash(BaseException):
    """The process dies here: nothing after it runs, no hook is called."""


def crashing_store(when: Callable[[str, bytes], bool]) -> Callable[[Any, str], S3Store]:
    class CrashingStore(S3Store):
        async def put(self, key: str, data: bytes) -> None:
            if when(key, data):
                raise Crash(key)
            await super().put(key, data)

    return CrashingStore


def nth_object_put(n: int) -> Callable[[str, bytes], bool]:
    seen = {"count": 0}

    def when(key: str, _data: bytes) -> bool:
        if key.startswith("telemetry/"):
            seen["count"] += 1
        return key.startswith("telemetry/") and seen["count"] == n

    return when


def nth_commit(n: int) -> Callable[[str, bytes], bool]:
    """The manifest write that commits a flush (its objects are all uploaded by then)."""
    seen = {"count": 0}

    def when(key: str, data: bytes) -> bool:
        if key.startswith("_archiver/") and b'"pending"' not in data:
            seen["count"] += 1
            return seen["count"] == n
        return False

    return when


def run(
    settings: ArchiverSettings,
    records: list[StreamRecord],
    checkpointer: Checkpointer,
    *,
    batch: int,
    store_factory: Callable[[Any, str], S3Store] = S3Store,
    finish: bool = False,
) -> bool:
    """One worker's life on the shard; False if it crashed."""
    processor = ShardProcessor(
        ArchiverHandler(settings, store_factory=store_factory),
        stream="telemetry",
        checkpoint_interval_s=0,
    )
    processor.initialize(Input(shard_id=SHARD, sequence_number=str(checkpointer.last)))
    try:
        for start in range(0, len(records), batch):
            chunk = kcl_records(records[start : start + batch])
            processor.process_records(Input(records=chunk, checkpointer=checkpointer))
        if finish:
            processor.shutdown_requested(Input(checkpointer=checkpointer))
        return True
    except Crash:
        return False


def lake_rows(settings: ArchiverSettings) -> tuple[list[str], list[dict[str, Any]]]:
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.bucket_lake, Prefix="telemetry/"
        )
        for o in page.get("Contents", [])
    ]
    rows: list[dict[str, Any]] = []
    for key in keys:
        body = s3.get_object(Bucket=settings.bucket_lake, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body), columns=["train", "seq", "channel", "source_seq"])
        rows.extend(table.to_pylist())
    return keys, rows


def expected(records: list[StreamRecord]) -> list[tuple[str, int, str, str]]:
    out = []
    for r in records:
        frame = msgspec.json.decode(r.data)
        out.extend(
            (frame["train"], frame["seq"], channel, r.sequence_number)
            for channel in frame["readings"]
        )
    return out


@pytest.mark.parametrize(
    ("crash_first", "crash_second"),
    [
        pytest.param(nth_object_put(7), nth_commit(2), id="mid-upload-then-before-commit"),
        pytest.param(nth_commit(3), nth_object_put(2), id="before-commit-then-mid-upload"),
    ],
)
def test_every_frame_once_after_crashes_and_replays(
    settings: ArchiverSettings,
    crash_first: Callable[[str, bytes], bool],
    crash_second: Callable[[str, bytes], bool],
) -> None:
    records = list(
        fleet_records(trains=4, start_ms=START_MS, duration_s=3 * 3600, period_s=10, shards=1)
    )
    checkpointer = Checkpointer()

    # First worker: flushes every 400 records, dies while a flush is half done.
    first = msgspec.structs.replace(settings, buffer_max_records=400, buffer_max_age_s=3600)
    assert not run(
        first, records, checkpointer, batch=100, store_factory=crashing_store(crash_first)
    )
    assert checkpointer.last is not None  # it got somewhere before dying

    # Second worker: other hints (so other boundaries), replays from the checkpoint, dies again.
    second = msgspec.structs.replace(settings, buffer_max_records=170, buffer_max_age_s=3600)
    replay = after(records, checkpointer.last)
    assert not run(
        second, replay, checkpointer, batch=64, store_factory=crashing_store(crash_second)
    )

    # Third worker: a time-based flush after every batch (age 0), then a graceful shutdown.
    third = msgspec.structs.replace(settings, buffer_max_records=10_000, buffer_max_age_s=0)
    assert run(third, after(records, checkpointer.last), checkpointer, batch=250, finish=True)
    assert checkpointer.last == (records[-1].sequence_number, 0)

    keys, rows = lake_rows(settings)
    got = sorted((r["train"], r["seq"], r["channel"], r["source_seq"]) for r in rows)
    want = sorted(expected(records))
    assert len(got) == len(want)
    assert got == want  # every reading of every frame, once, traced to its own record
    assert {(t, s) for t, s, _, _ in got} == {(t, s) for t, s, _, _ in want}
    assert len({k.rsplit("/", 1)[0] for k in keys}) == 4  # 20:26 to 23:26: four hour partitions


def test_checkpoint_never_passes_buffered_records(settings: ArchiverSettings) -> None:
    records = list(
        fleet_records(trains=2, start_ms=START_MS, duration_s=600, period_s=10, shards=1)
    )
    checkpointer = Checkpointer()
    held = msgspec.structs.replace(settings, buffer_max_records=10_000, buffer_max_age_s=3600)
    assert run(held, records, checkpointer, batch=30)
    assert checkpointer.last is None  # all buffered, nothing uploaded: nothing checkpointed
    keys, _ = lake_rows(settings)
    assert keys == []
