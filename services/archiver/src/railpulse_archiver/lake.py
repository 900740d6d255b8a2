"""From buffered events to Parquet objects: partitioning, object keys and encoding.

Key scheme (Hive-style partitions for pruning, then where the rows came from):

    telemetry/dt=YYYY-MM-DD/hour=HH/<shard>-<first seq>_<sub>-<last seq>_<sub>.parquet
    alerts/dt=YYYY-MM-DD/<shard>-<first>-<last>.parquet
    alarms/dt=YYYY-MM-DD/<shard>-<first>-<last>.parquet

Partitions follow sensor time (`ts_ms`, `at_ms`): a backfilled frame lands in the hour it was
measured, which is what "one train, one day" queries ask for. One flush covers one contiguous
range of a shard's records and writes one object per partition it touches, all named by that
range: writing the same range again produces the same keys and the same bytes (rows sorted, no
wall-clock anything in the file), so a replay overwrites instead of duplicating.
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

from railpulse_archiver.tables import (
    ALARMS,
    ALERTS,
    TELEMETRY,
    Located,
    Table,
    alarms_table,
    alerts_table,
    telemetry_table,
)
from railpulse_shared.contracts import AcceptedFrame, AlarmTransition, Anomaly

__all__ = [
    "Archivable",
    "LakeObject",
    "build_objects",
    "encode_parquet",
    "object_key",
    "partition_of",
    "table_for",
]

Archivable = AcceptedFrame | Anomaly | AlarmTransition
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


def _event_ms(event: Archivable) -> int:
    return event.at_ms if isinstance(event, AlarmTransition) else event.ts_ms


def partition_of(table: Table, ts_ms: int) -> tuple[str, ...]:
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if table.partition_keys == ("dt", "hour"):
        return (moment.strftime("%Y-%m-%d"), moment.strftime("%H"))
    return (moment.strftime("%Y-%m-%d"),)


def object_key(
    table: Table, partition: tuple[str, ...], shard: str, first: SeqPos, last: SeqPos
) -> str:
    prefix = "/".join(f"{k}={v}" for k, v in zip(table.partition_keys, partition, strict=True))
    return f"{table.name}/{prefix}/{shard}-{first[0]}_{first[1]}-{last[0]}_{last[1]}.parquet"


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
}


def build_objects(
    shard: str, items: Sequence[tuple[Located, Archivable]], first: SeqPos, last: SeqPos
) -> list[LakeObject]:
    """The objects of one flush: one per (table, partition), all named by the flush's range."""
    groups: dict[tuple[str, tuple[str, ...]], tuple[list[Located], list[Archivable]]] = defaultdict(
        lambda: ([], [])
    )
    tables: dict[str, Table] = {}
    for located, event in items:
        table = table_for(event)
        tables[table.name] = table
        group = groups[(table.name, partition_of(table, _event_ms(event)))]
        group[0].append(located)
        group[1].append(event)
    objects = []
    for (name, partition), (positions, events) in sorted(groups.items()):
        table = tables[name]
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
