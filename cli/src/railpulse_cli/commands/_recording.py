"""A recording in CSV: a time column and numeric channels, read and checked for `railpulse detect`.

Pure: text in, a `Recording` (or a `UsageError` naming the line) out. The time column is given,
or the first one named like time/timestamp/date, or the first column. Its values are ISO 8601
(UTC unless they say otherwise) or epoch seconds or milliseconds, told apart by size: a number
below 1e8 (1973 in seconds) could be either, or a counter, and is refused unless `time_unit`
says. Times must not go back. A column whose first value is a number is a channel (every later
value must be a number or empty); one whose first value is text is left out (and named). Header
names become channel names (the contract's `CHANNEL_NAME_PATTERN`): spaces become `_`, accents
are dropped; a name that cannot be one, or two that become the same, are refused.
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from railpulse_cli.errors import UsageError
from railpulse_shared.contracts import CHANNEL_NAME_PATTERN, MAX_CHANNEL_NAME, MAX_CHANNELS

__all__ = ["TIME_UNITS", "Recording", "channel_name", "read_recording"]

TIME_UNITS = ("iso", "s", "ms")
_TIME_NAMES = re.compile(r"^(time|timestamp|datetime|date|ts|t)$|time", re.IGNORECASE)
_CHANNEL = re.compile(CHANNEL_NAME_PATTERN)
_EPOCH_S_MIN = 1e8
_EPOCH_MS_MIN = 1e11


@dataclass
class Recording:
    time_column: str
    channels: list[str]
    """Channel names, in column order."""
    renamed: dict[str, str] = field(default_factory=dict)
    """Header name → channel name, where they differ."""
    ignored: list[str] = field(default_factory=list)
    """Text columns left out."""
    times: list[str] = field(default_factory=list)
    """The time cells as written (the output repeats them)."""
    ts_ms: list[int] = field(default_factory=list)
    rows: list[dict[str, float | None]] = field(default_factory=list)


def channel_name(header: str) -> str | None:
    """The channel name a header stands for, or None if it cannot be one."""
    name = re.sub(r"\s+", "_", header.strip())
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.:/-]", "_", name)
    if not name.strip("_") or len(name) > MAX_CHANNEL_NAME or not _CHANNEL.match(name):
        return None
    return name


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _time_column(header: list[str], asked: str | None) -> int:
    if asked is not None:
        if asked not in header:
            raise UsageError(
                f"line 1: no column {asked!r} (columns: {', '.join(header)})",
                "name the time column with --time-column",
            )
        return header.index(asked)
    for i, name in enumerate(header):
        if _TIME_NAMES.search(name.strip()):
            return i
    return 0


def _time_unit(first: str, line: int, column: str) -> str:
    value = _number(first)
    if value is None:
        try:
            datetime.fromisoformat(first)
        except ValueError:
            raise UsageError(
                f"line {line}: time {first!r} in column {column!r} is neither ISO 8601 nor epoch "
                "seconds or milliseconds",
                "name the time column with --time-column",
            ) from None
        return "iso"
    if abs(value) >= _EPOCH_MS_MIN:
        return "ms"
    if abs(value) >= _EPOCH_S_MIN:
        return "s"
    raise UsageError(
        f"line {line}: time {first} in column {column!r} could be epoch seconds, milliseconds "
        "or a counter",
        "say which with --time-unit s or --time-unit ms",
    )


def _ms(cell: str, unit: str, line: int, column: str) -> int:
    if unit == "iso":
        try:
            when = datetime.fromisoformat(cell.strip())
        except ValueError:
            raise UsageError(f"line {line}: time {cell!r} in column {column!r} is not ISO 8601",
                             "use one time format throughout") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return round(when.timestamp() * 1000)
    value = _number(cell)
    if value is None or not math.isfinite(value):
        raise UsageError(f"line {line}: time {cell!r} in column {column!r} is not a number",
                         "use one time format throughout")
    return round(value * (1000 if unit == "s" else 1))


def read_recording(
    lines: Iterable[str],
    *,
    time_column: str | None = None,
    delimiter: str = ",",
    time_unit: str | None = None,
) -> Recording:
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise UsageError("line 1: no header", "the first line names the columns")
    header = [h.strip() for h in header]
    if len(header) == 1:
        other = next((d for d in ";\t|," if d != delimiter and d in header[0]), None)
        if other is not None:
            shown = "\\t" if other == "\t" else other
            raise UsageError(f"line 1: one column {header[0]!r}, split by {delimiter!r}",
                             f"if the delimiter is {shown!r}, pass --delimiter {shown!r}")
    t = _time_column(header, time_column)
    kinds: list[str | None] = [None] * len(header)  # "number" / "text", from the first value
    kinds[t] = "time"
    recording = Recording(time_column=header[t], channels=[])
    last_ms: int | None = None
    unit = time_unit
    by_column: list[dict[int, float | None]] = []
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue  # a blank line
        if len(row) > len(header):
            raise UsageError(f"line {line}: {len(row)} fields, the header has {len(header)}",
                             f"is the delimiter {delimiter!r}? see --delimiter")
        cell = row[t].strip() if t < len(row) else ""
        if not cell:
            raise UsageError(f"line {line}: no time in column {header[t]!r}",
                             "every row needs its time")
        if unit is None:
            unit = _time_unit(cell, line, header[t])
        ts_ms = _ms(cell, unit, line, header[t])
        if last_ms is not None and ts_ms < last_ms:
            raise UsageError(f"line {line}: time {cell} is before the previous row's",
                             "sort the file by time")
        last_ms = ts_ms
        values: dict[int, float | None] = {}
        for i, raw in enumerate(row):
            if i == t or kinds[i] == "text":
                continue
            raw = raw.strip()
            if not raw:
                values[i] = None
                continue
            value = _number(raw)
            if kinds[i] is None:
                kinds[i] = "number" if value is not None else "text"
                if value is None:
                    continue
            if value is None:
                raise UsageError(
                    f"line {line}: {raw!r} in column {header[i]!r} is not a number",
                    "fix the cell or leave it empty (a missing reading)",
                )
            values[i] = value if math.isfinite(value) else None
        recording.times.append(cell)
        recording.ts_ms.append(ts_ms)
        by_column.append(values)
    numeric = [i for i, k in enumerate(kinds) if k == "number"]
    if not by_column:
        raise UsageError("no rows after the header", "is this the right file?")
    if not numeric:
        raise UsageError(f"line 1: no numeric column besides the time {header[t]!r}",
                         "a channel is a column of numbers")
    if len(numeric) > MAX_CHANNELS:
        raise UsageError(f"line 1: {len(numeric)} numeric columns, at most {MAX_CHANNELS}",
                         "cut the file to the channels to judge")
    names: dict[int, str] = {}
    for i in numeric:
        name = channel_name(header[i])
        if name is None:
            raise UsageError(
                f"line 1: column {header[i]!r} cannot be a channel name (letters, digits and "
                f"_.:/- only, at most {MAX_CHANNEL_NAME})",
                "rename the column",
            )
        if name in names.values():
            raise UsageError(f"line 1: columns {header[i]!r} and another both become {name!r}",
                             "rename one of them")
        names[i] = name
        if name != header[i]:
            recording.renamed[header[i]] = name
    recording.channels = list(names.values())
    recording.ignored = [header[i] for i, k in enumerate(kinds) if k == "text"]
    recording.rows = [{names[i]: row.get(i) for i in numeric} for row in by_column]
    return recording
