"""The Glue catalogue: one database, one external Parquet table per lake table, its partitions.

Tables are created once (idempotent); partitions are added after the objects in them are
uploaded, so Athena or Redshift Spectrum can query the lake as is. Known partitions are cached per
process: Glue is asked only about partitions this process has not registered yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_archiver.errors import LakeUnavailableError
from railpulse_archiver.tables import TABLES, Table

__all__ = ["GlueCatalog"]

logger = structlog.get_logger()

_PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "Parameters": {"serialization.format": "1"},
    },
}
_BATCH = 100
"""BatchCreatePartition takes at most 100 partitions per call."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class GlueCatalog:
    def __init__(self, client: Any, database: str, bucket: str) -> None:
        self.client = client
        self.database = database
        self.bucket = bucket
        self._known: set[tuple[str, tuple[str, ...]]] = set()
        self._ready = False

    def location(self, table: Table, partition: tuple[str, ...] = ()) -> str:
        parts = "".join(f"{k}={v}/" for k, v in zip(table.partition_keys, partition, strict=False))
        return f"s3://{self.bucket}/{table.name}/{parts}"

    async def ensure_tables(self) -> None:
        if self._ready:
            return
        try:
            try:
                await self.client.create_database(DatabaseInput={"Name": self.database})
            except ClientError as exc:
                if _code(exc) != "AlreadyExistsException":
                    raise
            for table in TABLES.values():
                try:
                    await self.client.create_table(
                        DatabaseName=self.database, TableInput=self._table_input(table)
                    )
                except ClientError as exc:
                    if _code(exc) != "AlreadyExistsException":
                        raise
                    await self._evolve(table)
        except (BotoCoreError, ClientError) as exc:
            raise LakeUnavailableError(f"glue tables: {exc}") from exc
        self._ready = True

    async def _evolve(self, table: Table) -> None:
        """Give an existing table the columns added to the lake since it was created (at the end,
        as in the schema; Athena reads Parquet by name, so older partitions read them as null).
        In AWS the deployment updates the table first, and nothing is called here."""
        found = await self.client.get_table(DatabaseName=self.database, Name=table.name)
        columns = found["Table"].get("StorageDescriptor", {}).get("Columns", [])
        if [c["Name"] for c in columns] == table.schema.names:
            return
        logger.info("glue_table_evolved", table=table.name)
        await self.client.update_table(
            DatabaseName=self.database, TableInput=self._table_input(table)
        )

    def _table_input(self, table: Table) -> dict[str, Any]:
        return {
            "Name": table.name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in table.partition_keys],
            "StorageDescriptor": {
                "Columns": table.glue_columns(),
                "Location": self.location(table),
                **_PARQUET,
            },
        }

    async def add_partitions(self, table: Table, partitions: Iterable[tuple[str, ...]]) -> int:
        """Register the partitions not yet known; return how many were new to this process."""
        await self.ensure_tables()
        new = sorted({p for p in partitions if (table.name, p) not in self._known})
        for start in range(0, len(new), _BATCH):
            chunk = new[start : start + _BATCH]
            inputs = [
                {
                    "Values": list(p),
                    "StorageDescriptor": {
                        "Columns": table.glue_columns(),
                        "Location": self.location(table, p),
                        **_PARQUET,
                    },
                }
                for p in chunk
            ]
            try:
                response = await self.client.batch_create_partition(
                    DatabaseName=self.database, TableName=table.name, PartitionInputList=inputs
                )
            except (BotoCoreError, ClientError) as exc:
                raise LakeUnavailableError(f"glue partitions of {table.name}: {exc}") from exc
            errors = [
                e
                for e in response.get("Errors", [])
                if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"
            ]
            if errors:
                raise LakeUnavailableError(f"glue partitions of {table.name}: {errors[0]}")
            self._known.update((table.name, p) for p in chunk)
        if new:
            logger.info("partitions_registered", table=table.name, count=len(new))
        return len(new)

    async def set_partition_location(
        self, table: Table, partition: tuple[str, ...], prefix: str
    ) -> None:
        """Point a partition at `prefix` (a compacted generation): Athena and Spectrum switch
        from the partition's old objects to the generation's in this one call."""
        await self.ensure_tables()
        partition_input = {
            "Values": list(partition),
            "StorageDescriptor": {
                "Columns": table.glue_columns(),
                "Location": f"s3://{self.bucket}/{prefix}",
                **_PARQUET,
            },
        }
        try:
            try:
                await self.client.update_partition(
                    DatabaseName=self.database,
                    TableName=table.name,
                    PartitionValueList=list(partition),
                    PartitionInput=partition_input,
                )
            except ClientError as exc:
                if _code(exc) != "EntityNotFoundException":
                    raise
                await self.client.create_partition(
                    DatabaseName=self.database, TableName=table.name, PartitionInput=partition_input
                )
        except (BotoCoreError, ClientError) as exc:
            raise LakeUnavailableError(f"glue partition {table.name}/{partition}: {exc}") from exc
        self._known.add((table.name, partition))
