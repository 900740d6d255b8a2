"""The lake's tables: Arrow schemas, the rows of each event, and their Glue column types.

Layout: **telemetry is long, one row per reading** (train, seq, ts, channel, value, quality, plus
the frame's context), not wide per channel group. Why:

- The schema never changes: a new channel, an uncatalogued sensor or a catalogue regrouping adds
  rows, not columns, so Glue, the warehouse tables and every object ever written keep one schema
  (no schema evolution, no nulls for the channels a train does not have).
- The queries people run are per channel: hourly statistics per (train, channel), quality flags
  per reading, one channel's history. `GROUP BY channel` is natural; a wide table needs a
  union of group tables or dynamic SQL.
- It costs little on disk: rows are sorted by (train, channel, ts) inside each object, so the
  repeated frame context (train, ts, position, source position, ...) is dictionary/RLE encoded
  nearly for free and a channel's values sit together, which zstd compresses well (see
  `make bench-archiver`: bytes per reading against the JSON that arrived).

Quality travels per reading (`quality`); the source position (stream, shard, sequence number)
travels per row, so any row leads back to the Kinesis record it came from. Alerts (`anomaly.v1`),
alarm transitions (`alarm.v1`) and dead letters (`rejected.v1`, the `rejects` table: the raw bytes
as binary, whatever they were) are one row per event. Partition columns (`dt`, `hour`) live in
the object key only (Hive style), never inside the files, as Athena and Spectrum expect.

**Schema evolution.** A column is only ever added, at the end of a table's schema (so the
warehouse's `ALTER TABLE ... ADD COLUMN` and Redshift's positional Parquet COPY agree with the new
objects), with the value it reads as in the objects written before it (`Table.added`): every
reader goes through `scan_select`, which fills it in where an object lacks it. Which objects lack
it is in their keys (`keys.py`: the schema version), never found by reading them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa

from railpulse_shared.contracts import AcceptedFrame, AlarmTransition, Anomaly, RejectedRecord
from railpulse_shared.errors import UnstorableError

__all__ = [
    "ALARMS",
    "ALERTS",
    "REJECTS",
    "TABLES",
    "TELEMETRY",
    "Located",
    "Table",
    "alarms_table",
    "alerts_table",
    "check_storable",
    "rejects_table",
    "scan_select",
    "telemetry_table",
]

_TS = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True, slots=True)
class Table:
    """A lake table: its name (= S3 prefix), schema, partition keys and sort order."""

    name: str
    schema: pa.Schema
    partition_keys: tuple[str, ...]
    sort_by: tuple[str, ...]
    added: tuple[tuple[str, int | str | bool], ...] = ()
    """Columns added after the table's first objects were written, in the order they were
    added (the schema's last columns), with what they read as in the objects older than them
    (a SQL literal's value)."""

    def __post_init__(self) -> None:
        names = self.schema.names[len(self.schema) - len(self.added) :]
        if names != [name for name, _ in self.added]:
            raise ValueError(f"{self.name}: added columns must be the schema's last, in order")

    @property
    def version(self) -> int:
        """The schema version objects are written at now: how many columns were added."""
        return len(self.added)

    def columns_at(self, version: int) -> list[str]:
        """The columns of an object written at schema `version` (`keys.key_version`)."""
        if not 0 <= version <= self.version:
            raise ValueError(f"{self.name} has no schema version {version}")
        names: list[str] = self.schema.names
        return names[: len(names) - self.version + version]

    def glue_columns(self) -> list[dict[str, str]]:
        return [{"Name": f.name, "Type": _glue_type(f.type)} for f in self.schema]


def _literal(value: int | str | bool) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def scan_select(table: Table, version: int) -> str:
    """The select list of `table`'s columns, in schema order, over objects written at schema
    `version`: a column added since reads as its default."""
    defaults = dict(table.added)
    have = set(table.columns_at(version))
    out = []
    for name in table.schema.names:
        quoted = '"' + name + '"'
        if name in have:
            out.append(quoted)
        else:
            kind = _SQL_TYPES[table.schema.field(name).type]
            out.append(f"CAST({_literal(defaults[name])} AS {kind}) AS {quoted}")
    return ", ".join(out)


_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "SMALLINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}
"""DuckDB's name of the types an added column may have."""


_SOURCE = [
    pa.field("source_stream", pa.string()),
    pa.field("source_shard", pa.string()),
    pa.field("source_seq", pa.string()),
    pa.field("source_sub_seq", pa.int32()),
]

TELEMETRY = Table(
    name="telemetry",
    schema=pa.schema(
        [
            pa.field("train", pa.string(), nullable=False),
            pa.field("seq", pa.int64(), nullable=False),
            pa.field("ts", _TS, nullable=False),
            pa.field("channel", pa.string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),
            pa.field("quality", pa.string(), nullable=False),
            pa.field("device_kind", pa.string()),
            pa.field("lat", pa.float64()),
            pa.field("lon", pa.float64()),
            pa.field("speed_kmh", pa.float64()),
            pa.field("backfill", pa.bool_()),
            pa.field("received_ms", pa.int64()),
            pa.field("ingested_ms", pa.int64()),
            *_SOURCE,
            # Added with the counter epoch; objects from before read as 0 (an older agent's).
            pa.field("epoch", pa.int64(), nullable=False),
        ]
    ),
    partition_keys=("dt", "hour"),
    sort_by=("train", "channel", "ts"),
    added=(("epoch", 0),),
)

ALERTS = Table(
    name="alerts",
    schema=pa.schema(
        [
            pa.field("anomaly_id", pa.string(), nullable=False),
            pa.field("train", pa.string(), nullable=False),
            pa.field("ts", _TS, nullable=False),
            pa.field("frame_seq", pa.int64()),
            pa.field("category", pa.string()),
            pa.field("severity", pa.int16()),
            pa.field("score", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("alert_key", pa.string()),
            pa.field("top_channel", pa.string()),
            pa.field("channels_json", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("message", pa.string()),
            pa.field("received_ms", pa.int64()),
            pa.field("ingested_ms", pa.int64()),
            pa.field("detected_ms", pa.int64()),
            *_SOURCE,
        ]
    ),
    partition_keys=("dt",),
    sort_by=("train", "ts"),
)

ALARMS = Table(
    name="alarms",
    schema=pa.schema(
        [
            pa.field("alarm_id", pa.string(), nullable=False),
            pa.field("train", pa.string(), nullable=False),
            pa.field("alert_key", pa.string()),
            pa.field("state", pa.string()),
            pa.field("previous", pa.string()),
            pa.field("severity", pa.int16()),
            pa.field("changed_at", _TS, nullable=False),
            pa.field("anomaly_id", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("version", pa.int32()),
            *_SOURCE,
        ]
    ),
    partition_keys=("dt",),
    sort_by=("train", "changed_at"),
)

REJECTS = Table(
    name="rejects",
    schema=pa.schema(
        [
            pa.field("reason", pa.string(), nullable=False),
            pa.field("detail", pa.string()),
            pa.field("rejected_at", _TS, nullable=False),
            pa.field("consumer", pa.string()),
            pa.field("device", pa.string()),
            pa.field("topic", pa.string()),
            pa.field("received_ms", pa.int64()),
            pa.field("raw_kind", pa.string()),
            pa.field("raw", pa.binary()),
            pa.field("raw_size", pa.int64()),
            pa.field("raw_s3_uri", pa.string()),
            pa.field("record_stream", pa.string()),
            pa.field("record_shard", pa.string()),
            pa.field("record_seq", pa.string()),
            pa.field("record_sub_seq", pa.int64()),
            *_SOURCE,
        ]
    ),
    partition_keys=("dt",),
    sort_by=("rejected_at", "record_shard", "record_seq", "record_sub_seq"),
)

TABLES: dict[str, Table] = {t.name: t for t in (TELEMETRY, ALERTS, ALARMS, REJECTS)}


@dataclass(frozen=True, slots=True)
class Located:
    """An event with the stream position it was read at."""

    stream: str
    shard: str
    seq: str
    sub_seq: int


def check_storable(table: pa.Table) -> pa.Table:
    """`table`, or `UnstorableError` if the warehouse could not load it: PostgreSQL's text (and
    Redshift's) holds no NUL, so one NUL in an object fails every load of that object. (What
    Arrow itself refuses, such as an integer beyond int64, raises while the table is built.)"""
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_string(field.type) and any(_has_nul(c) for c in column.chunks):
            raise UnstorableError(f"{field.name}: a NUL character")
    return table


def _has_nul(array: pa.Array) -> bool:
    """A zero byte in the characters of a string array (its data buffer, read in place: ~16x
    faster than a substring search, which matters on every flush)."""
    _, offsets, data = array.buffers()
    if data is None or len(array) == 0:
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)
    chars = np.frombuffer(data, dtype=np.uint8)[
        bounds[array.offset] : bounds[array.offset + len(array)]
    ]
    return bool(np.count_nonzero(chars) != chars.size)


def _glue_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamp"
    return {
        pa.string(): "string",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.int16(): "smallint",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.binary(): "binary",
    }[t]


def _source_columns(
    where: Sequence[Located], repeat: Sequence[int] | None = None
) -> list[pa.Array]:
    def col(values: list[object], type_: pa.DataType) -> pa.Array:
        arr = pa.array(values, type_)
        return arr.take(_repeat_index(repeat)) if repeat is not None else arr

    return [
        col([w.stream for w in where], pa.string()),
        col([w.shard for w in where], pa.string()),
        col([w.seq for w in where], pa.string()),
        col([w.sub_seq for w in where], pa.int32()),
    ]


def _repeat_index(counts: Sequence[int]) -> pa.Array:
    return pa.array(np.repeat(np.arange(len(counts), dtype=np.int64), counts))


def telemetry_table(frames: Sequence[AcceptedFrame], where: Sequence[Located]) -> pa.Table:
    """One row per reading. Frame-level columns are built once per frame, then repeated."""
    counts = [len(f.readings) for f in frames]
    channels: list[str] = []
    values: list[float] = []
    qualities: list[str] = []
    for f in frames:
        channels.extend(f.readings)
        for r in f.readings.values():
            values.append(r.value)
            qualities.append(r.quality)
    index = _repeat_index(counts)

    def frame_col(values_: list[object], type_: pa.DataType) -> pa.Array:
        return pa.array(values_, type_).take(index)

    columns: list[pa.Array] = [
        frame_col([f.train for f in frames], pa.string()),
        frame_col([f.seq for f in frames], pa.int64()),
        frame_col([f.ts_ms for f in frames], pa.int64()).cast(_TS),
        pa.array(channels, pa.string()),
        pa.array(values, pa.float64()),
        pa.array(qualities, pa.string()),
        frame_col([str(f.device_kind) for f in frames], pa.string()),
        frame_col([f.position.lat if f.position else None for f in frames], pa.float64()),
        frame_col([f.position.lon if f.position else None for f in frames], pa.float64()),
        frame_col([f.speed_kmh for f in frames], pa.float64()),
        frame_col([f.backfill for f in frames], pa.bool_()),
        frame_col([f.received_ms for f in frames], pa.int64()),
        frame_col([f.ingested_ms for f in frames], pa.int64()),
        *_source_columns(where, counts),
        frame_col([f.epoch for f in frames], pa.int64()),
    ]
    return check_storable(pa.Table.from_arrays(columns, schema=TELEMETRY.schema))


_json = msgspec.json.Encoder()


def alerts_table(anomalies: Sequence[Anomaly], where: Sequence[Located]) -> pa.Table:
    a = anomalies
    columns: list[pa.Array] = [
        pa.array([x.anomaly_id for x in a], pa.string()),
        pa.array([x.train for x in a], pa.string()),
        pa.array([x.ts_ms for x in a], pa.int64()).cast(_TS),
        pa.array([x.frame_seq for x in a], pa.int64()),
        pa.array([str(x.category) for x in a], pa.string()),
        pa.array([int(x.severity) for x in a], pa.int16()),
        pa.array([x.score for x in a], pa.float64()),
        pa.array([x.threshold for x in a], pa.float64()),
        pa.array([x.alert_key for x in a], pa.string()),
        pa.array([x.channels[0].channel if x.channels else None for x in a], pa.string()),
        pa.array([_json.encode(x.channels).decode() for x in a], pa.string()),
        pa.array([x.model_version for x in a], pa.string()),
        pa.array([x.message for x in a], pa.string()),
        pa.array([x.received_ms for x in a], pa.int64()),
        pa.array([x.ingested_ms for x in a], pa.int64()),
        pa.array([x.detected_ms for x in a], pa.int64()),
        *_source_columns(where),
    ]
    return check_storable(pa.Table.from_arrays(columns, schema=ALERTS.schema))


def alarms_table(transitions: Sequence[AlarmTransition], where: Sequence[Located]) -> pa.Table:
    t = transitions
    columns: list[pa.Array] = [
        pa.array([x.alarm_id for x in t], pa.string()),
        pa.array([x.train for x in t], pa.string()),
        pa.array([x.alert_key for x in t], pa.string()),
        pa.array([str(x.state) for x in t], pa.string()),
        pa.array([str(x.previous) if x.previous else None for x in t], pa.string()),
        pa.array([int(x.severity) for x in t], pa.int16()),
        pa.array([x.at_ms for x in t], pa.int64()).cast(_TS),
        pa.array([x.anomaly_id for x in t], pa.string()),
        pa.array([x.reason for x in t], pa.string()),
        pa.array([x.version for x in t], pa.int32()),
        *_source_columns(where),
    ]
    return check_storable(pa.Table.from_arrays(columns, schema=ALARMS.schema))


def _text(value: str | None) -> str | None:
    # The warehouse's text holds no NUL (see `check_storable`): a reject's text is description
    # (its bytes are in `raw`, exactly), so a NUL in it is shown, not refused.
    return value.replace("\x00", "\ufffd") if value is not None else None


def rejects_table(rejects: Sequence[RejectedRecord], where: Sequence[Located]) -> pa.Table:
    r = rejects
    columns: list[pa.Array] = [
        pa.array([_text(str(x.reason)) for x in r], pa.string()),
        pa.array([_text(x.detail) for x in r], pa.string()),
        pa.array([x.rejected_ms for x in r], pa.int64()).cast(_TS),
        pa.array([_text(x.consumer) or None for x in r], pa.string()),
        pa.array([_text(x.device) for x in r], pa.string()),
        pa.array([_text(x.topic) or None for x in r], pa.string()),
        pa.array([x.received_ms or None for x in r], pa.int64()),
        pa.array([_text(x.raw_kind) or None for x in r], pa.string()),
        pa.array([x.raw for x in r], pa.binary()),
        pa.array([x.raw_size for x in r], pa.int64()),
        pa.array([_text(x.raw_s3_uri) for x in r], pa.string()),
        pa.array([_text(x.source.stream) for x in r], pa.string()),
        pa.array([_text(x.source.shard_id) for x in r], pa.string()),
        pa.array([_text(x.source.sequence_number) for x in r], pa.string()),
        pa.array([x.source.sub_sequence_number for x in r], pa.int64()),
        *_source_columns(where),
    ]
    return check_storable(pa.Table.from_arrays(columns, schema=REJECTS.schema))
