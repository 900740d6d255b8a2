"""moto's DynamoDB Query on a table's own key reads its partition only
(`railpulse_devstack._moto_dynamodb`), in-process: the answers are DynamoDB's (key order, both
directions, pages, filters, an index), and a Query no longer walks the other partitions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from railpulse_devstack._moto_dynamodb import patches


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for owner, name, replacement in patches():
        monkeypatch.setattr(owner, name, replacement)  # undone after the test
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        client.create_table(
            TableName="alarms",
            KeySchema=[
                {"AttributeName": "train", "KeyType": "HASH"},
                {"AttributeName": "alert_key", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "train", "AttributeType": "S"},
                {"AttributeName": "alert_key", "AttributeType": "S"},
                {"AttributeName": "open", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-open",
                    "KeySchema": [{"AttributeName": "open", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for train in range(30):
            for key in ("door_4", "bearing_temp_1", "line_voltage", "hvac"):
                client.put_item(
                    TableName="alarms",
                    Item={
                        "train": {"S": f"train-{train:03d}"},
                        "alert_key": {"S": key},
                        "open": {"S": "yes" if key == "hvac" else "no"},
                    },
                )
        yield client


def query(ddb: Any, train: str, **extra: Any) -> list[str]:
    response = ddb.query(
        TableName="alarms",
        KeyConditionExpression=extra.pop("KeyConditionExpression", "#t = :t"),
        ExpressionAttributeNames={"#t": "train", **extra.pop("names", {})},
        ExpressionAttributeValues={":t": {"S": train}, **extra.pop("values", {})},
        **extra,
    )
    return [item["alert_key"]["S"] for item in response["Items"]]


def test_a_query_on_the_key_answers_as_dynamodb_from_its_partition_only(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[int] = []
    all_items = Table.all_items

    def counting(self: Table) -> list[Any]:
        items = all_items(self)
        walked.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)

    assert query(ddb, "train-007") == ["bearing_temp_1", "door_4", "hvac", "line_voltage"]
    assert walked == [4], "the Query looked at train-007's items only, not all 120"
    assert query(ddb, "train-007", ScanIndexForward=False) == [
        "line_voltage", "hvac", "door_4", "bearing_temp_1"
    ]
    assert query(ddb, "train-999") == []
    assert query(
        ddb,
        "train-007",
        KeyConditionExpression="#t = :t AND begins_with(alert_key, :b)",
        values={":b": {"S": "b"}},
    ) == ["bearing_temp_1"]
    assert query(
        ddb, "train-007", FilterExpression="#o = :o", names={"#o": "open"},
        values={":o": {"S": "yes"}},
    ) == ["hvac"]

    first = ddb.query(
        TableName="alarms", KeyConditionExpression="train = :t",
        ExpressionAttributeValues={":t": {"S": "train-012"}}, Limit=3,
    )
    rest = ddb.query(
        TableName="alarms", KeyConditionExpression="train = :t",
        ExpressionAttributeValues={":t": {"S": "train-012"}},
        ExclusiveStartKey=first["LastEvaluatedKey"],
    )
    assert [i["alert_key"]["S"] for i in first["Items"] + rest["Items"]] == [
        "bearing_temp_1", "door_4", "hvac", "line_voltage"
    ]

    walked.clear()
    opened = ddb.query(
        TableName="alarms", IndexName="by-open", KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "open"}, ExpressionAttributeValues={":o": {"S": "yes"}},
    )
    assert len(opened["Items"]) == 30  # an index is moto's own: every item looked at
    assert walked == [120]
    assert len(ddb.scan(TableName="alarms")["Items"]) == 120
