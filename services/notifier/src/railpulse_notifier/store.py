"""Alarm records in DynamoDB, written with a condition on their version.

Item: `train` (pk), `alert_key` (sk), `version` (N, +1 per write), `open` (BOOL, for the sweep's
scan), `doc` (S, the `AlarmRecord` as JSON). A write states the version it read
(`attribute_not_exists` for a new item): a redelivered message or a second notifier that read the
same version loses with `ConditionalCheckFailed`, re-reads, and re-applies its anomaly to the
winner's state, so no transition is produced twice or lost.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from botocore.exceptions import ClientError

from railpulse_notifier.errors import StoreUnavailableError
from railpulse_notifier.lifecycle import AlarmRecord

__all__ = ["AlarmStore", "VersionConflict"]

logger = structlog.get_logger()

_decoder = msgspec.json.Decoder(AlarmRecord)
_encoder = msgspec.json.Encoder()


class VersionConflict(Exception):
    """Another writer got there first (not an error: re-read and re-apply)."""


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _record(item: dict[str, Any]) -> AlarmRecord:
    record = _decoder.decode(item["doc"]["S"])
    pending = bool(item.get("pending", {}).get("BOOL", False))
    return msgspec.structs.replace(record, version=int(item["version"]["N"]), pending=pending)


class AlarmStore:
    def __init__(self, ddb: Any, table: str) -> None:
        self._ddb = ddb
        self._table = table

    async def load_train(self, train: str) -> dict[str, AlarmRecord]:
        """Every alarm record of one train (strongly consistent)."""
        records: dict[str, AlarmRecord] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#t = :t",
            "ExpressionAttributeNames": {"#t": "train"},
            "ExpressionAttributeValues": {":t": {"S": train}},
            "ConsistentRead": True,
        }
        try:
            while True:
                page = await self._ddb.query(**kwargs)
                for item in page.get("Items", []):
                    record = _record(item)
                    records[record.alert_key] = record
                if "LastEvaluatedKey" not in page:
                    return records
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as err:
            raise StoreUnavailableError(f"query {train}: {_code(err)}") from err

    async def get(self, train: str, alert_key: str) -> AlarmRecord | None:
        try:
            resp = await self._ddb.get_item(
                TableName=self._table,
                Key={"train": {"S": train}, "alert_key": {"S": alert_key}},
                ConsistentRead=True,
            )
        except ClientError as err:
            raise StoreUnavailableError(f"get {train}/{alert_key}: {_code(err)}") from err
        item = resp.get("Item")
        return _record(item) if item else None

    async def put(self, record: AlarmRecord) -> AlarmRecord:
        """Write `record` if the stored version is still `record.version`; returns it bumped."""
        written = msgspec.structs.replace(record, version=record.version + 1)
        doc = _encoder.encode(msgspec.structs.replace(written, version=0, pending=False)).decode()
        condition: dict[str, Any]
        if record.version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(alert_key)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(record.version)}},
            }
        try:
            await self._ddb.put_item(
                TableName=self._table,
                Item={
                    "train": {"S": record.train},
                    "alert_key": {"S": record.alert_key},
                    "version": {"N": str(written.version)},
                    "open": {"BOOL": written.open},
                    "pending": {"BOOL": written.pending},
                    "doc": {"S": doc},
                },
                **condition,
            )
        except ClientError as err:
            if _code(err) == "ConditionalCheckFailedException":
                raise VersionConflict(f"{record.train}/{record.alert_key}@{record.version}") from err
            raise StoreUnavailableError(f"put {record.train}: {_code(err)}") from err
        return written

    async def confirm(self, record: AlarmRecord) -> bool:
        """Mark `record`'s outbox delivered, unless a newer write has replaced it (False)."""
        try:
            await self._ddb.update_item(
                TableName=self._table,
                Key={"train": {"S": record.train}, "alert_key": {"S": record.alert_key}},
                UpdateExpression="SET #p = :f",
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#p": "pending", "#v": "version"},
                ExpressionAttributeValues={":f": {"BOOL": False}, ":v": {"N": str(record.version)}},
            )
        except ClientError as err:
            if _code(err) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailableError(f"confirm {record.train}: {_code(err)}") from err
        return True

    async def open_trains(self) -> set[str]:
        """Trains with at least one open alarm (a scan: used rarely, to adopt unknown trains)."""
        trains: set[str] = set()
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "#o = :t",
            "ProjectionExpression": "train",
            "ExpressionAttributeNames": {"#o": "open"},
            "ExpressionAttributeValues": {":t": {"BOOL": True}},
        }
        try:
            while True:
                page = await self._ddb.scan(**kwargs)
                trains.update(item["train"]["S"] for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return trains
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as err:
            raise StoreUnavailableError(f"scan: {_code(err)}") from err
