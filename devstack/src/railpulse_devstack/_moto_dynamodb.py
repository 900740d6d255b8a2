"""moto's DynamoDB Query made to cost what its key selects (moto 5.2.5).

moto answers a Query on a table's own key by sorting every item of the table and keeping the
ones with the partition key asked for: each Query costs O(items held). The notifier reads a
train's alarms with one Query (`AlarmStore.load_train`) for every train it watches, on every
sweep, so the stand-in's time grew with the fleet's alarms: DynamoDB's Query was a sixth of
moto's time in a 100-train soak, in the one process that also serves Kinesis and SQS. DynamoDB
reads a partition from its key. Here a Query on the table's own key now looks at its partition's
items only; a Query on an index is moto's own.

`install()` replaces the two functions in the moto server process (see `moto_server`).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models.table import Table

__all__ = ["install", "patches"]

_partition = threading.local()
"""The partition key of the Query this thread is answering, if it is on the table's own key."""


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        if asked.get("index_name") or asked.get("hash_key") is None:
            return original(self, *args, **kwargs)
        _partition.key = asked["hash_key"]
        try:
            return original(self, *args, **kwargs)
        finally:
            _partition.key = None

    return query


def _all_items(original: Callable[[Table], list[Any]]) -> Callable[[Table], list[Any]]:
    def all_items(self: Table) -> list[Any]:
        key = getattr(_partition, "key", None)
        if key is None:
            return original(self)
        held = self.items.get(key)  # not `[key]`: `items` is a defaultdict
        if not held:
            return []
        return sorted(held.values(), key=lambda x: x.range_key) if self.range_key_attr else [held]

    return all_items


def patches() -> list[tuple[object, str, Callable[..., Any]]]:
    """(owner, attribute, replacement) of each function replaced."""
    return [
        (Table, "query", _query(Table.query)),
        (Table, "all_items", _all_items(Table.all_items)),
    ]


def install() -> None:
    for owner, name, replacement in patches():
        setattr(owner, name, replacement)
