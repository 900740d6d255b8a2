"""The per-shard manifest: what of a shard is in the lake, and the one flush that may be half done.

Stored in the lake bucket at `_archiver/<stream>/<shard>.json` (outside every table prefix). A
flush writes `pending` (its record range and keys) *before* uploading, then `committed` (the range's
last position) *after* the uploads and the Glue partitions. After a crash the next worker reads it:

- records at or before `committed` are already in the lake: skipped on replay;
- a `pending` flush is redone with exactly the same boundaries (the buffer flushes when it reaches
  `pending.last`, never earlier), so it rewrites the same keys with the same bytes — even when the
  first run's flush was cut by a timer that fires differently this time. No replay can leave two
  objects holding the same record under different keys.
"""

from __future__ import annotations

import msgspec

from railpulse_archiver.errors import ManifestConflictError
from railpulse_archiver.store import ObjectStore

__all__ = ["Pending", "ShardManifest", "load_manifest", "manifest_key", "save_manifest"]

SeqPos = tuple[str, int]


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    first: SeqPos
    last: SeqPos
    keys: list[str]


class ShardManifest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    committed: SeqPos | None = None
    pending: Pending | None = None
    flushes: int = 0


def manifest_key(stream: str, shard: str) -> str:
    return f"_archiver/{stream}/{shard}.json"


async def load_manifest(store: ObjectStore, stream: str, shard: str) -> ShardManifest:
    data = await store.get(manifest_key(stream, shard))
    if data is None:
        return ShardManifest()
    try:
        return msgspec.json.decode(data, type=ShardManifest)
    except msgspec.DecodeError as exc:
        raise ManifestConflictError(f"manifest of {stream}/{shard}: {exc}") from exc


async def save_manifest(
    store: ObjectStore, stream: str, shard: str, manifest: ShardManifest
) -> None:
    await store.put(manifest_key(stream, shard), msgspec.json.encode(manifest))
