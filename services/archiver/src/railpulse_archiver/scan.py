"""How every reader of the lake reads a table's objects: one `SELECT` over DuckDB's
`read_parquet`, with the table's columns whatever the objects' age.

Objects written before a column was added (`Table.added`) lack it, and their keys say so (the
schema version, `keys.py`). The objects are grouped by version; each group is one plain
`read_parquet` (all its objects have the same columns, so DuckDB reads the first footer's schema
and trusts it, as for any table) with a select list that gives the columns the group lacks their
defaults (`scan_select`), and the groups are `UNION ALL`ed. No object is opened to learn its
columns (DuckDB's `union_by_name` reads every footer, on every bind: seconds over a day of loose
objects, minutes over S3). Once compaction has rewritten a partition it is all at the current
version, so a compacted lake is one group: a single plain scan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from railpulse_archiver.keys import key_version
from railpulse_archiver.tables import Table, scan_select

__all__ = ["read_sql"]

HIVE_TYPES = {"dt": "DATE", "hour": "INTEGER"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_sql(table: Table, paths: Sequence[str], *, hive: bool = False) -> str:
    """`SELECT` of every column of `table` (in schema order; then, with `hive`, the partition
    columns from the keys) over the objects at `paths` (at least one)."""
    if not paths:
        raise ValueError(f"no objects of {table.name} to read")
    if hive:
        types = ", ".join(f"'{k}': '{HIVE_TYPES[k]}'" for k in table.partition_keys)
        options = f"hive_partitioning = true, hive_types = {{{types}}}"
    else:
        options = "hive_partitioning = false"
    extra = [f'"{k}"' for k in table.partition_keys] if hive else []
    groups: dict[int, list[str]] = defaultdict(list)
    for path in paths:
        groups[key_version(path)].append(path)
    selects = []
    for version, group in sorted(groups.items()):
        source = f"read_parquet([{', '.join(_quote(p) for p in group)}], {options})"
        selects.append(f"SELECT {', '.join([scan_select(table, version), *extra])} FROM {source}")
    return "\nUNION ALL\n".join(selects)
