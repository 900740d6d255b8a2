"""moto's Kinesis made faithful (`railpulse_devstack._moto_kinesis`), in-process: puts from many
threads into one shard all land; after a reshard a closed parent keeps its records, new records
go to the children only, and a reader past a closed parent's last record gets no next iterator
and the children's names."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from railpulse_devstack._moto_kinesis import patches


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for owner, name, replacement in patches():
        monkeypatch.setattr(owner, name, replacement)  # undone after the test
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="t",
                              aws_secret_access_key="t")
        client.create_stream(StreamName="s", ShardCount=2)
        yield client


def read(kinesis: Any, shard: str) -> tuple[list[bytes], dict[str, Any]]:
    """Every record of a shard from the start, and the last GetRecords response."""
    it = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    data: list[bytes] = []
    for _ in range(10):
        response = kinesis.get_records(ShardIterator=it)
        data += [r["Data"] for r in response["Records"]]
        it = response.get("NextShardIterator")
        if not it or not response["Records"]:
            return data, response
    raise AssertionError("the shard never ended")


def put(kinesis: Any, keys: list[str], tag: str) -> dict[str, str]:
    """Put one record per key; where each landed."""
    return {key: kinesis.put_record(StreamName="s", PartitionKey=key,
                                    Data=f"{tag}-{key}".encode())["ShardId"] for key in keys}


def test_a_split_parent_keeps_its_records_and_ends_into_its_children(kinesis: Any) -> None:
    keys = [f"train-{i}" for i in range(20)]
    before = put(kinesis, keys, "before")
    kinesis.update_shard_count(StreamName="s", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    after = put(kinesis, keys, "after")

    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName="s")["Shards"]}
    parents = {s.get("ParentShardId") for s in shards.values()} - {None}
    children = {k for k, s in shards.items() if s.get("ParentShardId")}
    assert len(parents) == 2 and len(children) == 4
    assert set(before.values()) <= parents and set(after.values()) <= children
    for key in keys:  # each key moved to a child of the shard it was in
        assert shards[after[key]]["ParentShardId"] == before[key]

    for parent in parents:
        data, end = read(kinesis, parent)
        assert data == [f"before-{k}".encode() for k in keys if before[k] == parent]
        assert "NextShardIterator" not in end
        assert {c["ShardId"] for c in end["ChildShards"]} == {
            k for k in children if shards[k]["ParentShardId"] == parent}
        assert all(c["ParentShards"] == [parent] for c in end["ChildShards"])
    for child in children:
        data, end = read(kinesis, child)
        assert data == [f"after-{k}".encode() for k in keys if after[k] == child]
        assert end.get("NextShardIterator") and "ChildShards" not in end  # open: never ends


def test_a_merge_closes_both_parents_and_starts_empty(kinesis: Any) -> None:
    keys = [f"train-{i}" for i in range(10)]
    before = put(kinesis, keys, "before")
    kinesis.update_shard_count(StreamName="s", TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    after = put(kinesis, keys, "after")
    (merged,) = set(after.values())
    for parent in set(before.values()):
        data, end = read(kinesis, parent)
        assert data == [f"before-{k}".encode() for k in keys if before[k] == parent]
        assert [c["ShardId"] for c in end["ChildShards"]] == [merged]
    assert read(kinesis, merged)[0] == [f"after-{k}".encode() for k in keys]


def test_puts_from_many_threads_into_one_shard_all_land(kinesis: Any) -> None:
    import moto.kinesis.models as models

    stream = models.kinesis_backends["123456789012"]["us-east-1"].streams["s"]
    threads = [threading.Thread(target=lambda i=i: [stream.put_record("pk", None, f"{i}-{j}")
                                                    for j in range(300)]) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: unlocked, about one put in 200 is lost
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    shard = stream.get_shard_for_key("pk", None)
    assert len(shard.records) == 8 * 300
    assert list(shard.records) == list(range(1, 8 * 300 + 1))


def test_reads_from_any_position_match_moto_and_follow_a_rebound_shard() -> None:
    """The sorted index of sequence numbers gives what moto's walk from the first record gives,
    for every position and limit; a shard whose `records` something else rebound is re-indexed."""
    import moto.kinesis.models as models

    from railpulse_devstack import _moto_kinesis as fast

    shard = models.Shard(0, 0, 2**128 - 1)
    shard.sequence_numbers = []
    for i in range(300):
        assert fast._put_record(shard, f"k{i}", "ZGF0YQ==", "") == str(i + 1)
    assert (fast._get_min_sequence_number(shard), fast._get_max_sequence_number(shard)) == (1, 300)
    for position in (0, 1, 150, 299, 300, 400):
        for limit in (None, 1, 7, 1000):
            ours = fast._get_records(shard, str(position), limit)
            theirs = models.Shard.get_records(shard, str(position), limit)
            assert [r.sequence_number for r in ours[0]] == [r.sequence_number for r in theirs[0]]
            assert ours[1] == theirs[1]
    # moto's own resharding rebinds `records` with other numbers: the index follows.
    shard.records = {seq: shard.records[seq] for seq in (5, 9, 40)}
    assert [r.sequence_number for r in fast._get_records(shard, "6", None)[0]] == [9, 40]
    assert fast._put_record(shard, "k", "ZGF0YQ==", "") == "41"
