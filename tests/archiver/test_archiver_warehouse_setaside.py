"""One object the warehouse refuses is set aside with its error; every other object still loads.

The probe that found this archived a channel named "a\\u0000b": PostgreSQL's text holds no NUL, so
that object's COPY failed, and since the loader stopped at the first failure nothing after it was
loaded, ever. The archiver now refuses such events (see test_archiver_unstorable); objects written
before that, or damaged ones, still reach the loader.
"""

from __future__ import annotations

import boto3
import msgspec
import pyarrow as pa
from archiver_fixtures import fresh_settings
from archiver_lakebuild import archive

from railpulse_archiver.lake import encode_parquet
from railpulse_archiver.query import connect_lake
from railpulse_archiver.share import load_warehouse
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.tables import TELEMETRY
from railpulse_archiver.warehouse import connect_warehouse, lake_objects
from railpulse_shared.metrics import Metrics

START_MS = 1_780_000_000_000
BAD_KEY = "telemetry/dt=2026-01-01/hour=00/shardId-000000000000-1_0-1_0.parquet"
"""Sorts before every other object: the loader meets it first."""


def _object(channel: str) -> bytes:
    """One reading, written straight to Parquet (as an older archiver did, no NUL check)."""
    row = {
        "train": "train-009", "seq": 1, "ts": START_MS, "channel": channel, "value": 1.0,
        "quality": "good", "device_kind": "train", "lat": None, "lon": None, "speed_kmh": None,
        "backfill": False, "received_ms": START_MS, "ingested_ms": START_MS,
        "source_stream": "telemetry", "source_shard": "shardId-000000000000",
        "source_seq": "1", "source_sub_seq": 0,
    }  # fmt: skip
    # The schema of its day: before `epoch` was added.
    schema = pa.schema([f for f in TELEMETRY.schema if f.name != "epoch"])
    return encode_parquet(pa.Table.from_pylist([row], schema=schema), TELEMETRY.sort_by)


class Lines:
    def __init__(self) -> None:
        self.docs: list[dict[str, object]] = []

    def write(self, line: bytes) -> None:
        self.docs.append(msgspec.json.decode(line))


def test_a_bad_object_is_set_aside_and_the_rest_loads_then_a_fix_loads_it(
    moto_endpoint: str, postgres_dsn: str
) -> None:
    base = fresh_settings(moto_endpoint)
    settings = msgspec.structs.replace(base, warehouse_dsn=postgres_dsn, buffer_max_records=100)
    frames = list(
        fleet_records(trains=2, start_ms=START_MS, duration_s=3 * 3600, period_s=120, shards=1)
    )
    archive(settings, frames, "telemetry")
    readings = sum(len(msgspec.json.decode(r.data)["readings"]) for r in frames)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=settings.bucket_lake, Key=BAD_KEY, Body=_object("a\x00b"))
    root = f"s3://{settings.bucket_lake}"
    objects = lake_objects(connect_lake(root, endpoint=moto_endpoint), root)
    assert objects[0] == ("telemetry", BAD_KEY) and len(objects) > 3

    lines = Lines()
    metrics = Metrics("railpulse", {"service": "archiver", "stream": "warehouse"}, lines)
    report = load_warehouse(settings, metrics=metrics)

    assert list(report.set_aside) == [BAD_KEY]
    assert "0x00" in report.set_aside[BAD_KEY]
    assert len(report.loaded) == len(objects) - 1 and report.rows == readings
    assert lines.docs[-1]["WarehouseObjectsSetAside"] == 1

    conn = connect_warehouse(postgres_dsn, settings.warehouse_schema)
    assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (readings,)
    recorded = conn.execute(
        "SELECT object_key, table_name, attempts, error LIKE '%%0x00%%' FROM archive_setaside"
    ).fetchall()
    assert recorded == [(BAD_KEY, "telemetry", 1, True)]

    # Later loads leave it alone (it would only fail again); the alarm's metric stays up.
    again = load_warehouse(settings, metrics=metrics)
    assert again.loaded == [] and again.held == 1 and again.set_aside == {}
    assert lines.docs[-1]["WarehouseObjectsSetAside"] == 1

    # Retried unfixed, it fails again and counts the attempt.
    still = load_warehouse(settings, retry_set_aside=True)
    assert list(still.set_aside) == [BAD_KEY]
    assert conn.execute("SELECT attempts FROM archive_setaside").fetchone() == (2,)

    # After a fix (the object rewritten), a retry loads it and clears it from the set-aside table.
    s3.put_object(Bucket=settings.bucket_lake, Key=BAD_KEY, Body=_object("a_b"))
    fixed = load_warehouse(settings, retry_set_aside=True, metrics=metrics)
    assert fixed.loaded == [BAD_KEY] and fixed.set_aside == {} and fixed.held == 0
    assert conn.execute("SELECT count(*) FROM archive_setaside").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (readings + 1,)
    assert lines.docs[-1]["WarehouseObjectsSetAside"] == 0
