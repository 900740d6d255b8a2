"""moto's Kinesis made faithful where the KCL and the local stack depend on it (moto 5.2.5).

1. **Concurrent puts.** moto's `Shard.put_record` is "not safe for concurrency" (its own comment):
   two puts into one shard at once take the same sequence number and one record silently replaces
   the other. hypercorn serves requests from several threads, so the local stack lost records
   whenever producers wrote to one shard at once (ingest's shard processors all write to
   `telemetry`). Reads iterating a shard's records while a put lands failed with a 500. Each
   shard's records are now read and written under a lock of their own.
2. **Resharding.** A split moved the parent's records into the stream again and records kept
   landing in the closed parent (its hash range is searched first), with sequence numbers that
   restart: a consumer's checkpoint then skips records or sees them twice. In Kinesis a closed
   parent keeps its records, readable until they expire, and new records go to the open children
   only. GetRecords never ended a closed shard either: in Kinesis, once a reader is past a closed
   shard's last record, NextShardIterator is null and ChildShards names the children; the KCL
   marks the parent SHARD_END there and only then starts the children (parents first keeps each
   key's order). Without it the parent is read forever and the children never start.
3. **Reads and puts that do not slow down as a shard fills.** moto finds the records after an
   iterator's position by walking the shard from its first record, and a put finds the last
   sequence number by listing every key: both cost O(records held), and moto keeps every record
   it was ever given. With the KCL polling every shard five times a second, the stand-in slowed
   down by the minute (a 200-train benchmark after three 50-train runs on one stack: broker ->
   ingest p99 45 s, moto saturated). A shard now keeps its sequence numbers in a sorted list
   beside the records: a read bisects to its position and takes what follows, a put appends.
   Kinesis reads from an iterator's position whatever the shard holds.

`install()` replaces those functions in the moto server process (see `moto_server`). The
replacements change `Stream.shards` by rebinding a new dict, never in place, because a put may be
looking a shard up meanwhile.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

import moto.kinesis.models as kinesis_models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.utilities.utils import md5_hash

__all__ = ["install", "patches"]

_MAX_HASH = 2**128


def _get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    """The open shard whose hash range holds the key (ranges are inclusive, as in Kinesis)."""
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        if not isinstance(explicit_hash_key, str) or int(explicit_hash_key) >= _MAX_HASH:
            raise InvalidArgumentError("explicit_hash_key")
        key = int(explicit_hash_key)
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in list(self.shards.values()):
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


def _new_shards(self: Any, ranges: list[tuple[int, int]], parent: str, adjacent: str = "") -> None:
    last = max(s._shard_id for s in self.shards.values())
    children = [
        kinesis_models.Shard(
            last + 1 + i,
            starting_hash=lo,
            ending_hash=hi,
            parent=parent,
            adjacent_parent=adjacent or None,
        )
        for i, (lo, hi) in enumerate(ranges)
    ]
    # The children exist before their parents close, so a put always finds an open shard.
    self.shards = {**self.shards, **{c.shard_id: c for c in children}}


def _split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
    start = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.starting_hash < start < shard.ending_hash:
        raise InvalidArgumentError(
            message=f"NewStartingHashKey {start} is not within shard {shard_to_split}'s hash range"
        )
    if not shard.is_open:
        raise InvalidArgumentError(
            message=f"Shard {shard_to_split} has already been merged or split"
        )
    _new_shards(
        self, [(shard.starting_hash, start - 1), (start, shard.ending_hash)], shard.shard_id
    )
    shard.is_open = False  # its records stay, readable, as in Kinesis


def _merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    first, second = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    low, high = sorted((first, second), key=lambda s: s.starting_hash)
    if low.ending_hash + 1 != high.starting_hash:
        raise InvalidArgumentError(adjacent_shard_to_merge)
    if not (first.is_open and second.is_open):
        raise InvalidArgumentError(message="a shard to merge is already closed")
    _new_shards(self, [(low.starting_hash, high.ending_hash)], first.shard_id, second.shard_id)
    first.is_open = second.is_open = False


def _children(stream: Any, shard_id: str) -> list[dict[str, Any]]:
    return [
        {
            "ShardId": child.shard_id,
            "ParentShards": [p for p in (child.parent, child.adjacent_parent) if p],
            "HashKeyRange": {
                "StartingHashKey": str(child.starting_hash),
                "EndingHashKey": str(child.ending_hash),
            },
        }
        for child in list(stream.shards.values())
        if shard_id in (child.parent, child.adjacent_parent)
    ]


def _ending_closed_shards(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_records(self: KinesisResponse) -> Any:
        result = original(self)
        body = result.result
        if body["Records"]:
            return result
        stream_name, shard_id, position = decompose_shard_iterator(self._get_param("ShardIterator"))
        stream = self.kinesis_backend.describe_stream(
            stream_arn=self._get_param("StreamARN"), stream_name=stream_name or None
        )
        shard = stream.get_shard(shard_id)
        if not shard.is_open and int(position) >= shard.get_max_sequence_number():
            body["NextShardIterator"] = None
            body["ChildShards"] = _children(stream, shard_id)
        return result

    return get_records


def _sequence_numbers(shard: Any) -> list[int]:
    """The shard's sequence numbers in order, kept beside `records` (rebuilt if something other
    than `_put_record` changed them: moto's own resharding rebinds `records`)."""
    seqs: list[int] = shard.sequence_numbers
    if len(seqs) != len(shard.records):
        seqs = shard.sequence_numbers = sorted(shard.records)
    return seqs


def _put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
    seqs = _sequence_numbers(self)
    sequence_number = (seqs[-1] if seqs else 0) + 1
    self.records[sequence_number] = kinesis_models.Record(
        partition_key, data, sequence_number, explicit_hash_key
    )
    seqs.append(sequence_number)
    return str(sequence_number)


def _get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """The records after `last_sequence_id` (at most `limit`), the last one's sequence number
    (the position itself if there are none) and how far behind the newest record they end."""
    seqs = _sequence_numbers(self)
    start = bisect.bisect_right(seqs, int(last_sequence_id))
    chosen = seqs[start : start + limit] if limit else seqs[start:]
    if not chosen:
        return [], int(last_sequence_id), 0
    records = [self.records[seq] for seq in chosen]
    behind = self.records[seqs[-1]].created_at - records[-1].created_at
    return records, chosen[-1], int(behind * 1000)


def _get_min_sequence_number(self: Any) -> int:
    seqs = _sequence_numbers(self)
    return seqs[0] if seqs else 0


def _get_max_sequence_number(self: Any) -> int:
    seqs = _sequence_numbers(self)
    return seqs[-1] if seqs else 0


def _with_lock(init: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.records_lock = threading.Lock()
        self.sequence_numbers = []  # see _sequence_numbers

    return __init__


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.records_lock:
            return method(self, *args, **kwargs)

    return locked


def patches() -> list[tuple[object, str, Callable[..., Any]]]:
    """(owner, attribute, replacement) of each function replaced."""
    shard, stream = kinesis_models.Shard, kinesis_models.Stream
    return [
        (shard, "__init__", _with_lock(shard.__init__)),
        (shard, "put_record", _locked(_put_record)),
        (shard, "get_records", _locked(_get_records)),
        (shard, "get_min_sequence_number", _locked(_get_min_sequence_number)),
        (shard, "get_max_sequence_number", _locked(_get_max_sequence_number)),
        (shard, "get_sequence_number_at", _locked(shard.get_sequence_number_at)),
        (stream, "get_shard_for_key", _get_shard_for_key),
        (stream, "split_shard", _split_shard),
        (stream, "merge_shards", _merge_shards),
        (KinesisResponse, "get_records", _ending_closed_shards(KinesisResponse.get_records)),
    ]


def install() -> None:
    for owner, name, replacement in patches():
        setattr(owner, name, replacement)
