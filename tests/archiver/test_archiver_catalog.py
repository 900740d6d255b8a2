"""The Glue catalogue lists the tables and exactly the partitions written; events land too."""

from __future__ import annotations

import asyncio

import boto3
import msgspec
from archiver_events import event_records
from archiver_lakebuild import archive

from railpulse_archiver.catalog import GlueCatalog
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.tables import TELEMETRY
from railpulse_shared.aws import AwsClients

START_MS = 1_780_000_000_000


def listed(settings: ArchiverSettings, prefix: str) -> set[tuple[str, ...]]:
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=settings.bucket_lake, Prefix=prefix).get("Contents", [])
    ]
    return {tuple(p.split("=", 1)[1] for p in key.split("/")[1:-1]) for key in keys}


def test_glue_lists_the_partitions_written(settings: ArchiverSettings) -> None:
    frames = list(
        fleet_records(trains=3, start_ms=START_MS, duration_s=2 * 3600, period_s=60, shards=1)
    )
    telemetry = archive(settings, frames, "telemetry")
    assert telemetry.positions[-1] is None  # shard end: the SHARD_END checkpoint
    events = msgspec.structs.replace(settings, archiver_stream="events")
    archive(events, event_records(START_MS), "events")

    glue = boto3.client("glue", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    tables = {
        t["Name"]: t for t in glue.get_tables(DatabaseName=settings.glue_database)["TableList"]
    }
    assert set(tables) == {"telemetry", "alerts", "alarms", "rejects"}
    assert [k["Name"] for k in tables["telemetry"]["PartitionKeys"]] == ["dt", "hour"]
    columns = {c["Name"]: c["Type"] for c in tables["telemetry"]["StorageDescriptor"]["Columns"]}
    assert columns["value"] == "double" and columns["quality"] == "string"
    assert columns["source_seq"] == "string" and columns["epoch"] == "bigint"
    rejects = {c["Name"]: c["Type"] for c in tables["rejects"]["StorageDescriptor"]["Columns"]}
    assert rejects["raw"] == "binary" and rejects["reason"] == "string"
    for table in ("telemetry", "alerts", "alarms"):
        partitions = glue.get_partitions(DatabaseName=settings.glue_database, TableName=table)[
            "Partitions"
        ]
        catalogued = {tuple(p["Values"]) for p in partitions}
        written = listed(settings, f"{table}/")
        assert written and catalogued == written, table
        for p in partitions:
            assert p["StorageDescriptor"]["Location"].startswith(
                f"s3://{settings.bucket_lake}/{table}/dt="
            )


def test_compaction_in_s3_points_glue_partitions_at_the_generation(
    settings: ArchiverSettings,
) -> None:
    """`railpulse compact` against S3: every row once through the views, and each Glue partition
    (what Athena reads) now at its compacted generation's prefix, which holds every row."""
    from datetime import UTC, datetime

    from railpulse_archiver.query import connect_lake
    from railpulse_archiver.share import compact_lake

    frames = list(
        fleet_records(trains=3, start_ms=START_MS, duration_s=2 * 3600, period_s=60, shards=1)
    )
    archive(msgspec.structs.replace(settings, buffer_max_records=30), frames, "telemetry")
    readings = sum(len(msgspec.json.decode(r.data)["readings"]) for r in frames)
    day = datetime.fromtimestamp(START_MS / 1000, UTC).date().isoformat()
    results = compact_lake(settings, day, tables=["telemetry"])
    assert results and all(r.folded > 1 and len(r.objects) == 1 for r in results)

    root = f"s3://{settings.bucket_lake}"
    con = connect_lake(root, endpoint=settings.aws_endpoint_url)
    assert con.execute("SELECT count(*) FROM telemetry").fetchone() == (readings,)
    glue = boto3.client("glue", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    partitions = glue.get_partitions(DatabaseName=settings.glue_database, TableName="telemetry")
    rows = 0
    for p in partitions["Partitions"]:
        location = p["StorageDescriptor"]["Location"]
        assert location.startswith(f"{root}/telemetry/_compacted/dt=")
        got = con.execute(f"SELECT count(*) FROM read_parquet('{location}*.parquet')").fetchone()
        rows += got[0] if got else 0
    assert rows == readings


def test_a_table_catalogued_before_a_column_was_added_gets_it(settings: ArchiverSettings) -> None:
    """A Glue table made from an older schema (telemetry without `epoch`, as every catalogue made
    before the column has it) is given the new columns at the end when the archiver starts."""
    glue = boto3.client("glue", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    glue.create_database(DatabaseInput={"Name": settings.glue_database})
    old = GlueCatalog(None, settings.glue_database, settings.bucket_lake)._table_input(TELEMETRY)
    old["StorageDescriptor"]["Columns"] = [
        c for c in old["StorageDescriptor"]["Columns"] if c["Name"] != "epoch"
    ]
    glue.create_table(DatabaseName=settings.glue_database, TableInput=old)

    async def start() -> None:
        async with AwsClients(settings).create("glue") as client:
            await GlueCatalog(client, settings.glue_database, settings.bucket_lake).ensure_tables()

    asyncio.run(start())
    table = glue.get_table(DatabaseName=settings.glue_database, Name="telemetry")["Table"]
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names == TELEMETRY.schema.names and names[-1] == "epoch"
