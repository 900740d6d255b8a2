"""From buffered events to Parquet objects: partitioning, object keys and encoding.

Key scheme (Hive-style partitions for pruning, then where the rows came from):

    telemetry/dt=YYYY-MM-DD/hour=HH/<shard>-<first seq>_<sub>-<last seq>_<sub>.v1.parquet
    alerts/dt=YYYY-MM-DD/<shard>-<first>-<last>.parquet
    alarms/dt=YYYY-MM-DD/<shard>-<first>-<last>.parquet
    rejects/dt=YYYY-MM-DD/<shard>-<first>-<last>.parquet

(`.v1`: the table's schema version, the number of columns added to it; none at version 0. See
`keys.py`: readers learn an object's columns from its key.)

Partitions follow sensor time (`ts_ms`, `at_ms`; a dead letter's `rejected_ms`): a backfilled frame lands in the hour it was
measured, which is what "one train, one day" queries ask for. One flush covers one contiguous
range of a shard's records and writes one object per partition it touches, all named by that
range: writing the same range again produces the same keys and the same bytes (rows sorted, no
wall-clock anything in the file), so a replay overwrites instead of duplicating.

A valid event the lake cannot hold (an integer beyond its column's range, a NUL in a string, a
time no calendar has) must not stall the flush: `build_storable` finds such events by bisection
(only when the whole flush fails to build, so the healthy path pays nothing) and builds the
objects of the rest; the caller dead-letters the ones set aside.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from railpulse_archiver.keys import versioned
from railpulse_archiver.tables import (
    ALARMS,
    ALERTS,
    REJECTS,
    TABLES,
    TELEMETRY,
    Located,
    Table,
    alarms_table,
    alerts_table,
    rejects_table,
    telemetry_table,
)
from railpulse_shared.contracts import AcceptedFrame, AlarmTransition, Anomaly, RejectedRecord
from railpulse_shared.errors import UnstorableError

__all__ = [
    "Archivable",
    "LakeObject",
    "build_objects",
    "build_storable",
    "encode_parquet",
    "object_key",
    "partition_of",
    "table_for",
]

Archivable = AcceptedFrame | Anomaly | AlarmTransition | RejectedRecord
SeqPos = tuple[str, int]

ZSTD_LEVEL = 6
"""A little above zstd's default 3: objects are written once and read many times."""


@dataclass(frozen=True, slots=True)
class LakeObject:
    key: str
    table: str
    partition: tuple[str, ...]
    """Partition values in the order of the table's `partition_keys`."""
    rows: int
    data: bytes


def table_for(event: Archivable) -> Table:
    match event:
        case AcceptedFrame():
            return TELEMETRY
        case Anomaly():
            return ALERTS
        case AlarmTransition():
            return ALARMS
        case RejectedRecord():
            return REJECTS


def _event_ms(event: Archivable) -> int:
    match event:
        case AlarmTransition():
            return event.at_ms
        case RejectedRecord():
            return event.rejected_ms
        case _:
            return event.ts_ms


def partition_of(table: Table, ts_ms: int) -> tuple[str, ...]:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if table.partition_keys == ("dt", "hour"):
        return (moment.strftime("%Y-%m-%d"), moment.strftime("%H"))
    return (moment.strftime("%Y-%m-%d"),)


def object_key(
    table: Table, partition: tuple[str, ...], shard: str, first: SeqPos, last: SeqPos
) -> str:
    prefix = "/".join(f"{k}={v}" for k, v in zip(table.partition_keys, partition, strict=True))
    name = f"{shard}-{first[0]}_{first[1]}-{last[0]}_{last[1]}"
    return versioned(f"{table.name}/{prefix}/{name}", table.version)


def encode_parquet(table: pa.Table, sort_by: Sequence[str]) -> bytes:
    """Sorted rows, zstd, dictionaries where they pay; deterministic for the same rows."""
    table = table.sort_by([(c, "ascending") for c in sort_by])
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=True,
        write_statistics=True,
        row_group_size=1_000_000,
    )
    return sink.getvalue()


_BUILDERS: dict[str, Callable[[Any, Any], pa.Table]] = {
    TELEMETRY.name: telemetry_table,
    ALERTS.name: alerts_table,
    ALARMS.name: alarms_table,
    REJECTS.name: rejects_table,
}


def _groups(
    items: Sequence[tuple[Located, Archivable]],
) -> dict[tuple[str, tuple[str, ...]], tuple[list[Located], list[Archivable]]]:
    groups: dict[tuple[str, tuple[str, ...]], tuple[list[Located], list[Archivable]]] = defaultdict(
        lambda: ([], [])
    )
    for located, event in items:
        table = table_for(event)
        group = groups[(table.name, partition_of(table, _event_ms(event)))]
        group[0].append(located)
        group[1].append(event)
    return groups


def build_objects(
    shard: str, items: Sequence[tuple[Located, Archivable]], first: SeqPos, last: SeqPos
) -> list[LakeObject]:
    """The objects of one flush: one per (table, partition), all named by the flush's range."""
    objects = []
    for (name, partition), (positions, events) in sorted(_groups(items).items()):
        table = TABLES[name]
        arrow = _BUILDERS[name](events, positions)
        objects.append(
            LakeObject(
                key=object_key(table, partition, shard, first, last),
                table=name,
                partition=partition,
                rows=arrow.num_rows,
                data=encode_parquet(arrow, table.sort_by),
            )
        )
    return objects


def _check(items: Sequence[tuple[Located, Archivable]]) -> None:
    """Raise if `items` cannot become tables (what `build_objects` does, short of Parquet)."""
    for (name, _), (positions, events) in _groups(items).items():
        _BUILDERS[name](events, positions)


def _unstorable(
    items: Sequence[tuple[Located, Archivable]], offset: int = 0
) -> list[tuple[int, Exception]]:
    """The index (from `offset`) and error of every item that cannot become a table row."""
    try:
        _check(items)
        return []
    except Exception as exc:  # anything Arrow or the calendar refuses: narrowed down below
        if len(items) == 1:
            return [(offset, exc)]
        mid = len(items) // 2
        return _unstorable(items[:mid], offset) + _unstorable(items[mid:], offset + mid)


def build_storable(
    shard: str, items: Sequence[tuple[Located, Archivable]], first: SeqPos, last: SeqPos
) -> tuple[list[LakeObject], dict[int, UnstorableError]]:
    """The objects of one flush without the items the lake cannot hold, and those items' errors
    by index (the objects keep the flush's range in their names either way)."""
    try:
        return build_objects(shard, items, first, last), {}
    except Exception:  # which item (if any) is to blame is found below
        bad = _unstorable(items)
        if not bad:
            raise  # not one item alone: a fault of its own, not the data's
    errors = {
        i: exc
        if isinstance(exc, UnstorableError)
        else UnstorableError(f"{type(exc).__name__}: {exc}")
        for i, exc in bad
    }
    rest = [item for i, item in enumerate(items) if i not in errors]
    return build_objects(shard, rest, first, last), errors
