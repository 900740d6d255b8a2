"""Stand-ins for the inputs amazon_kclpy hands a record processor, and a recording checkpointer.

They let a test drive `ShardProcessor` exactly as the MultiLangDaemon would, including a replay
from the last checkpoint after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from railpulse_shared.batch import StreamRecord


@dataclass
class Checkpointer:
    positions: list[tuple[str, int] | None] = field(default_factory=list)

    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None:
        self.positions.append(
            None if sequence_number is None else (sequence_number, sub_sequence_number or 0)
        )

    @property
    def last(self) -> tuple[str, int] | None:
        done = [p for p in self.positions if p is not None]
        return done[-1] if done else None


@dataclass
class KclRecord:
    binary_data: bytes
    sequence_number: str
    sub_sequence_number: int
    partition_key: str
    timestamp_millis: int


@dataclass
class Input:
    """Any of the hook inputs: only the attributes the processor reads."""

    shard_id: str = ""
    sequence_number: str | None = None
    records: list[KclRecord] = field(default_factory=list)
    checkpointer: Any = None
    millis_behind_latest: int | None = 0


def kcl_records(records: list[StreamRecord]) -> list[KclRecord]:
    return [
        KclRecord(r.data, r.sequence_number, r.sub_sequence_number, r.partition_key, r.arrival_ms)
        for r in records
    ]


def after(records: list[StreamRecord], position: tuple[str, int] | None) -> list[StreamRecord]:
    """What the KCL delivers on restart: every record after the last checkpoint."""
    if position is None:
        return list(records)
    mark = (int(position[0]), position[1])
    return [r for r in records if (int(r.sequence_number), r.sub_sequence_number) > mark]
