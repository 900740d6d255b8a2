"""Which lake objects are live: a partition's loose flush objects and its compacted generation.

Every reader of the lake (the DuckDB views of `railpulse query`, the warehouse loader, the
compaction itself) lists objects through `live_objects`, never by a bare glob, so each row is seen
exactly once at every instant, compaction or not:

- the archiver writes *loose* objects under `<table>/<partition>/` (`lake.object_key`);
- a compaction rewrites a partition's live objects into a new *generation* under
  `<table>/_compacted/<partition>/g<N>-<token>/part-<i>[.v<version>].parquet` (`keys.py`), then
  commits by one PUT of the partition's state `_compaction/<table>/<partition>.json`
  (`PartitionState`): the generation's objects and every loose key ever folded into it
  (`replaced`);
- live = the state's generation objects + the loose objects not in `replaced`. Before the PUT a
  reader sees the old state (old generation + loose objects, the new generation unlisted); after
  it, the new one. Objects a commit supersedes are deleted only a grace period later (`garbage`),
  so a reader that listed before the commit can still read what it listed.

`replaced` is never trimmed: a loose key's segment (`keys.segment_id`, the key without its schema
version) is a flush's identity (the same range always gets the same segment and rows), so if a
stale worker ever writes a folded range again, at any version, it stays excluded.
`segments` are the loose keys whose rows the generation holds: the warehouse ledger's identities
(`warehouse.py` loads a generation's rows of the segments it has not loaded yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import msgspec

from railpulse_archiver.keys import segment_id
from railpulse_archiver.tables import TABLES, Table

__all__ = [
    "Garbage",
    "GenerationUnit",
    "LakeListing",
    "PartitionState",
    "generation_prefix",
    "list_lake",
    "live_objects",
    "partition_path",
    "segment_range",
    "state_key",
]

STATE_ROOT = "_compaction"


class Garbage(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    since_ms: int
    """When the commit that superseded it happened."""


class PartitionState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    generation: int = 0
    unit: str = ""
    """The generation's identity, `<table>/_compacted/<partition>/g<N>-<token>` (its prefix)."""
    objects: list[str] = msgspec.field(default_factory=list)
    segments: list[str] = msgspec.field(default_factory=list)
    replaced: list[str] = msgspec.field(default_factory=list)
    garbage: list[Garbage] = msgspec.field(default_factory=list)
    committed_ms: int = 0


def partition_path(table: Table, partition: tuple[str, ...]) -> str:
    return "/".join(f"{k}={v}" for k, v in zip(table.partition_keys, partition, strict=True))


def state_key(table: Table, partition: tuple[str, ...]) -> str:
    return f"{STATE_ROOT}/{table.name}/{partition_path(table, partition)}.json"


def generation_prefix(table: Table, partition: tuple[str, ...], generation: int, token: str) -> str:
    return f"{table.name}/_compacted/{partition_path(table, partition)}/g{generation}-{token}"


def segment_range(key: str) -> tuple[str, tuple[str, int], tuple[str, int]]:
    """`(shard, first, last)` of a loose object's key (`<shard>-<seq>_<sub>-<seq>_<sub>.parquet`;
    shard ids hold dashes, sequence numbers do not)."""
    name = segment_id(key).rsplit("/", 1)[-1].removesuffix(".parquet")
    shard, first, last = name.rsplit("-", 2)
    f_seq, f_sub = first.split("_")
    l_seq, l_sub = last.split("_")
    return shard, (f_seq, int(f_sub)), (l_seq, int(l_sub))


def partition_of_key(table: Table, key: str) -> tuple[str, ...]:
    """The partition values of a loose key `<table>/k=v/.../<name>`."""
    parts = key.split("/")[1 : 1 + len(table.partition_keys)]
    return tuple(p.split("=", 1)[1] for p in parts)


def live_objects(loose: list[str], state: PartitionState | None) -> list[str]:
    """A partition's live objects (keys): its generation's and the loose ones not folded in."""
    if state is None:
        return sorted(loose)
    replaced = {segment_id(k) for k in state.replaced}
    return [*state.objects, *sorted(k for k in loose if segment_id(k) not in replaced)]


@dataclass(frozen=True, slots=True)
class GenerationUnit:
    table: str
    partition: tuple[str, ...]
    state: PartitionState


@dataclass(slots=True)
class LakeListing:
    """The live lake at one instant: per table, its loose objects (not folded) and generations."""

    loose: dict[str, list[str]]
    generations: dict[str, list[GenerationUnit]]

    def files(self, table: str) -> list[str]:
        """Every live object of `table` (keys relative to the root)."""
        out = [k for g in self.generations[table] for k in g.state.objects]
        return out + self.loose[table]


def _glob(con: duckdb.DuckDBPyConnection, pattern: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute("SELECT file FROM glob(?) ORDER BY file", [pattern]).fetchall()
    ]


def read_states(
    con: duckdb.DuckDBPyConnection, root: str, table: Table
) -> dict[tuple[str, ...], PartitionState]:
    base = root.rstrip("/")
    depth = "/".join("*" for _ in table.partition_keys[:-1])
    pattern = f"{base}/{STATE_ROOT}/{table.name}/{depth + '/' if depth else ''}*.json"
    if not _glob(con, pattern):
        return {}
    states: dict[tuple[str, ...], PartitionState] = {}
    rows = con.execute("SELECT filename, content FROM read_text(?)", [pattern]).fetchall()
    for filename, content in rows:
        rel = str(filename).removeprefix(base + "/").removesuffix(".json")
        values = tuple(p.split("=", 1)[1] for p in rel.split("/")[2:])
        states[values] = msgspec.json.decode(content, type=PartitionState)
    return states


def list_lake(con: duckdb.DuckDBPyConnection, root: str) -> LakeListing:
    """The live objects of every table. States are read before the objects are listed: a loose
    object folded by a commit in between is listed with the older state, which still lacks it
    from `replaced` and lists the older generation: each row once either way."""
    base = root.rstrip("/")
    loose: dict[str, list[str]] = {}
    generations: dict[str, list[GenerationUnit]] = {}
    for table in TABLES.values():
        states = read_states(con, root, table)
        depth = "/".join("*" for _ in table.partition_keys)
        keys = [
            f.removeprefix(base + "/") for f in _glob(con, f"{base}/{table.name}/{depth}/*.parquet")
        ]
        replaced = {segment_id(k) for s in states.values() for k in s.replaced}
        loose[table.name] = [k for k in keys if segment_id(k) not in replaced]
        generations[table.name] = [
            GenerationUnit(table.name, p, s) for p, s in sorted(states.items()) if s.objects
        ]
    return LakeListing(loose, generations)
