"""No input, however malformed, crashes ingest or disappears: it is forwarded or dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_support import Stack, envelope, make_stack, record

from railpulse_ingest.handler import build_pipeline
from railpulse_ingest.processor import make_processor
from railpulse_ingest.settings import IngestSettings
from railpulse_shared import codec
from railpulse_shared.batch import StreamRecord
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import AcceptedFrame, RejectedRecord

NOW_S = time.time()
DEVICES = ["train-1", "train-2", "sensor-1", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False)
readings = st.dictionaries(
    st.sampled_from(["temperature", "humidity", "speed_mps", "bearing_temp_1", "x", "kind"])
    | st.text(max_size=6),
    numbers | st.text(max_size=3) | st.none(),
    max_size=5,
)
generic = st.builds(
    lambda device, ts, extra: {"device_id": device, "timestamp": ts, **extra},
    st.sampled_from(DEVICES) | st.integers(),
    st.sampled_from([NOW_S, NOW_S - 5, 1_700_100_000]) | numbers | st.text(max_size=12),
    readings,
)
frames = st.builds(
    lambda train, seq, ts, r: {
        "kind": "frame.v1",
        "train": train,
        "seq": seq,
        "ts_ms": ts,
        "readings": r,
    },
    st.sampled_from(DEVICES),
    st.integers(-2, 5),
    st.sampled_from([int(NOW_S * 1000)]) | st.integers(-1, 10**14),
    readings,
)
batches = st.builds(
    lambda train, fs: {"kind": "frames.v1", "train": train, "frames": fs},
    st.sampled_from(DEVICES),
    st.lists(frames, max_size=3),
)
payloads = (
    st.binary(max_size=64)
    | json_values.map(lambda v: json.dumps(v).encode())
    | (generic | frames | batches).map(lambda d: json.dumps(d).encode())
)
enveloped = st.builds(lambda p, who: envelope(p, who or "anon"), payloads, st.sampled_from(DEVICES))
single = st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()) | enveloped


def aggregate(parts: list[bytes]) -> bytes:
    aggregator = RecordAggregator()
    for part in parts:
        aggregator.add_user_record("pk", part)
    return bytes(aggregator.clear_and_get().get_contents()[2])


inputs = st.lists(single | st.lists(enveloped, min_size=1, max_size=3).map(aggregate), max_size=12)


def records_of(datas: list[bytes]) -> list[StreamRecord]:
    return [record(d, i) for i, d in enumerate(datas)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_pipeline_accounts_for_every_record(datas: list[bytes]) -> None:
    pipeline = build_pipeline(load_settings(IngestSettings, env={}))
    plan = pipeline.plan(records_of(datas), int(time.time() * 1000))
    assert plan.accepted_records + len(plan.rejected) == plan.user_records
    for out in plan.outgoing:  # everything forwarded is a valid accepted.v1 event
        assert isinstance(codec.decode_event(out.data), AcceptedFrame)
    for rejected in plan.rejected:
        assert isinstance(
            codec.decode_event(codec.encode(_as_record(rejected.rejection))), RejectedRecord
        )


def _as_record(r: Any) -> RejectedRecord:
    return RejectedRecord(
        reason=r.reason, detail=r.detail, raw=r.raw, source=r.source, rejected_ms=1
    )


class Checkpointer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def checkpoint(self, sequence_number: str | None = None, sub: int | None = None) -> None:
        self.calls.append((sequence_number or "", sub or 0))


def kcl_batch(records: list[StreamRecord], checkpointer: Checkpointer) -> SimpleNamespace:
    return SimpleNamespace(
        records=[
            SimpleNamespace(
                binary_data=r.data,
                sequence_number=r.sequence_number,
                sub_sequence_number=0,
                partition_key="pk",
                timestamp_millis=0,
            )
            for r in records
        ],
        checkpointer=checkpointer,
        millis_behind_latest=0,
    )


@pytest.fixture(scope="module")
def shared_stack(moto_url: str) -> Stack:
    return asyncio.run(make_stack(moto_url))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(datas=inputs)
def test_processor_forwards_or_dead_letters_every_record(
    shared_stack: Stack, datas: list[bytes]
) -> None:
    stack = shared_stack
    shard = f"shardId-{uuid.uuid4().hex[:12]}"  # this example's records, apart from the others'
    records = records_of(datas)
    processor = make_processor(stack.settings, stack.clients)
    processor.checkpoint_interval_s = 0
    processor.initialize(SimpleNamespace(shard_id=shard, sequence_number="TRIM_HORIZON"))
    checkpointer = Checkpointer()
    processor.process_records(kcl_batch(records, checkpointer))
    processor.shutdown_requested(SimpleNamespace(checkpointer=checkpointer))

    telemetry = asyncio.run(stack.read_stream(stack.settings.stream_telemetry))
    events = [codec.decode_event(d) for d in telemetry]
    forwarded = [
        e
        for e in events
        if isinstance(e, AcceptedFrame) and e.source and e.source.shard_id == shard
    ]
    messages = asyncio.run(stack.queue_messages())
    rejects = [msgspec.json.decode(m["Body"].encode(), type=RejectedRecord) for m in messages]
    rejects = [r for r in rejects if r.source.shard_id == shard]
    found = {
        (f.source.sequence_number, f.source.sub_sequence_number) for f in forwarded if f.source
    }
    found |= {(r.source.sequence_number, r.source.sub_sequence_number) for r in rejects}
    keys = {(f.train, f.seq) for f in forwarded}
    pipeline = build_pipeline(load_settings(IngestSettings, env={}))
    for r in records:
        plan = pipeline.plan([r], int(time.time() * 1000))
        for i in range(plan.user_records):
            if (r.sequence_number, i) in found:
                continue
            # Not on either side: only a duplicate of something forwarded may be missing.
            assert plan.outgoing or plan.duplicates, (r, plan)
            assert all((o.train, o.seq) in keys for o in plan.outgoing), (r, plan)
    positions = [(r.source.sequence_number, r.source.sub_sequence_number) for r in rejects]
    assert len(positions) == len(set(positions))  # each reject once
    if records:
        assert checkpointer.calls[-1] == (records[-1].sequence_number, 0)
