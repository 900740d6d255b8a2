"""What an object's key says about it: its schema version, and the flush range it holds.

A table's schema only grows at its end (`tables.Table.added`), so an object's columns are the
first `len(schema) - len(added) + version` of its table's, where `version` is how many added
columns it was written with. Every object the archiver and the compaction write carries that
number in its name, just before the extension:

    telemetry/dt=2026-05-28/hour=20/shardId-000000000000-1_0-9_0.v1.parquet
    telemetry/_compacted/dt=2026-05-28/hour=20/g3-1a2b3c4d/part-0.v1.parquet

so readers know each object's columns from the listing alone (`scan.read_sql`), with no footer
read and no `union_by_name`. Version 0 has no marker: keys written before versions existed (and
every key of a table that never gained a column) read as version 0, unchanged. The marker is part
of the file name only: Athena and Redshift Spectrum read every file under a partition's location
whatever it is called (only names starting `_` or `.` are skipped) and the Glue catalogue names
locations, not files, so they see no difference.

A loose object's *segment* (`segment_id`) is its key without the marker: the flush range's
identity, the same whichever version wrote it (a pending flush redone by a newer archiver writes
the same range under a newer key). Compaction's `replaced`, the pending flushes it leaves alone
and the warehouse's ledger all compare segments, so no range is ever live or loaded twice.
"""

from __future__ import annotations

import re

__all__ = ["key_version", "segment_id", "versioned"]

_MARKED = re.compile(r"\.v([0-9]+)\.parquet$")


def versioned(stem: str, version: int) -> str:
    """The key of an object named `stem` (without extension) written at schema `version`."""
    return f"{stem}.parquet" if version == 0 else f"{stem}.v{version}.parquet"


def key_version(key: str) -> int:
    """The schema version a key names (0 without a marker)."""
    found = _MARKED.search(key)
    return int(found.group(1)) if found else 0


def segment_id(key: str) -> str:
    """The key without its version marker: the same for every version of one flush range."""
    return _MARKED.sub(".parquet", key)
