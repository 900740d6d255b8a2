"""Hostile input at ingest's boundary (no network): every bound of the contracts gives a precise
reject reason, bytes that are not JSON are `malformed_json` (never an internal error), and a frame
whose identity was accepted before is a duplicate when its content is the same, a kept conflict
when it is not, and new data under a new counter epoch."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from ingest_support import envelope, record
from structlog.testing import capture_logs

from railpulse_ingest.handler import build_pipeline
from railpulse_ingest.pipeline import Pipeline, Plan
from railpulse_ingest.recover import _mark
from railpulse_ingest.settings import IngestSettings
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import MAX_BATCH_FRAMES, MAX_CHANNELS, AcceptedFrame, RejectReason
from railpulse_shared.contracts.telemetry import MAX_EPOCH_MS

NOW_MS = int(time.time() * 1000)
TRAIN = "train-001"


def pipeline() -> Pipeline:
    return build_pipeline(load_settings(IngestSettings, env={}))


def frame(seq: int = 1, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "frame.v1",
        "train": TRAIN,
        "seq": seq,
        "ts_ms": NOW_MS - 1000,
        "readings": {"speed": 80.5, "bearing_temp_1": 41.0},
    }
    return doc | fields


def js(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))  # compact: 10,000 channels fit in 128 KiB


def plan_of(
    *payloads: bytes, pipe: Pipeline | None = None, who: str = TRAIN, start: int = 0
) -> Plan:
    pipe = pipe or pipeline()
    records = [record(envelope(p, who), start + i) for i, p in enumerate(payloads)]
    plan = pipe.plan(records, NOW_MS)
    for out in plan.outgoing:  # as the handler does once PutRecords took them
        pipe.dedup.mark(out.train, out.epoch, out.seq, out.digest)
    return plan


def only_reject(plan: Plan) -> tuple[RejectReason, str]:
    assert plan.outgoing == []
    (rejected,) = plan.rejected
    return rejected.rejection.reason, rejected.rejection.detail


def accepted(plan: Plan) -> list[AcceptedFrame]:
    return [msgspec.json.decode(o.data, type=AcceptedFrame) for o in plan.outgoing]


# -- bounds --------------------------------------------------------------------------------------

TOO_BIG = 123456789012345678901234567890


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (frame(seq=TOO_BIG), "<= 9223372036854775807 - at `$.seq`"),
        (frame(seq=2**63), "<= 9223372036854775807 - at `$.seq`"),
        (frame(seq=-1), ">= 0 - at `$.seq`"),
        (frame(ts_ms=MAX_EPOCH_MS + 1), "<= 253402300799999 - at `$.ts_ms`"),
        (frame(ts_ms=-5), ">= 0 - at `$.ts_ms`"),
        (frame(epoch=2**63), "at `$.epoch`"),
        (frame(epoch=-1), "at `$.epoch`"),
        (frame(readings={"a\u0000b": 1.0}), "matching regex"),
        (frame(readings={"speed\n": 1.0}), "matching regex"),
        (frame(readings={"a\tb": 1.0}), "matching regex"),
        (frame(readings={"a b": 1.0}), "matching regex"),
        (frame(readings={"x" * 65: 1.0}), "length <= 64"),
        (frame(readings={"": 1.0}), "length >= 1"),
        (frame(readings={f"c{i}": 1.0 for i in range(MAX_CHANNELS + 1)}), "length <= 256"),
        (frame(readings={f"c{i}": 1 for i in range(10_000)}), "length <= 256"),
        (
            {
                "kind": "frames.v1",
                "train": TRAIN,
                "frames": [frame(s, readings={}) for s in range(MAX_BATCH_FRAMES + 1)],
            },
            f"length <= {MAX_BATCH_FRAMES}",
        ),
        (
            {"kind": "frames.v1", "train": TRAIN, "frames": [frame(1), frame(seq=2**64)]},
            "at `$.frames[1].seq`",
        ),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, str) else None,
)
def test_frames_outside_the_contract_bounds_are_schema_violations(
    doc: dict[str, Any], expected: str
) -> None:
    reason, detail = only_reject(plan_of(js(doc).encode()))
    assert reason is RejectReason.SCHEMA_VIOLATION
    assert expected in detail


def test_a_name_key_error_names_the_readings() -> None:
    _, detail = only_reject(plan_of(js(frame(readings={"a\u0000b": 1.0})).encode()))
    assert detail.endswith("(at $.readings (a key))")


def test_frames_at_the_bounds_are_accepted() -> None:
    """The largest seq and epoch, 256 channels, 64-character names with every allowed character,
    and the generic aliases and uncatalogued names devices use."""
    names = {f"x{i}": 1.0 for i in range(MAX_CHANNELS - 3)}
    names |= {"a" * 64: 2.0, "Odd.Name:v2/x-1": 3.0, "speed_kmh": 72.0}
    doc = frame(seq=2**63 - 1, epoch=2**63 - 1, readings=names)
    plan = plan_of(js(doc).encode())
    (out,) = accepted(plan)
    assert (out.seq, out.epoch) == (2**63 - 1, 2**63 - 1)
    assert len(out.readings) == MAX_CHANNELS and out.readings["speed"].value == 72.0


@pytest.mark.parametrize(
    ("doc", "reason", "expected"),
    [
        ({"timestamp": NOW_MS / 1000, "a\u0000b": 1}, RejectReason.SCHEMA_VIOLATION, "'a\\x00b'"),
        ({"timestamp": NOW_MS / 1000, "x" * 65: 1}, RejectReason.SCHEMA_VIOLATION, "1-64 of"),
        (
            {"timestamp": NOW_MS / 1000, **{f"c{i}": 1 for i in range(MAX_CHANNELS + 1)}},
            RejectReason.SCHEMA_VIOLATION,
            "257 readings, at most 256",
        ),
        ({"timestamp": 1e300}, RejectReason.TIMESTAMP_OUT_OF_BOUNDS, "outside"),
        ({"timestamp": 1e306}, RejectReason.TIMESTAMP_OUT_OF_BOUNDS, "overflows"),
        ({"timestamp": -1, "t": 1}, RejectReason.TIMESTAMP_OUT_OF_BOUNDS, "outside"),
        ({"device_id": "s-1\n", "timestamp": NOW_MS / 1000}, RejectReason.SCHEMA_VIOLATION, ""),
    ],
)
def test_generic_payloads_are_bounded_as_frames_are(
    doc: dict[str, Any], reason: RejectReason, expected: str
) -> None:
    who = doc.get("device_id", "s-1")
    got, detail = only_reject(plan_of(js(doc).encode(), who=who))
    assert got is reason and expected in detail


# -- bytes that are not JSON ---------------------------------------------------------------------

DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"kind": "frame.v1", "train": "t\xff"}', "invalid UTF-8 in a string"),
        (b'{"device_id": "s\xff", "timestamp": 1}', "invalid UTF-8 in a string"),
        (b'{"kind": "frame.v1", "readings": {"sp\xc3": 1}}', "invalid UTF-8 in a string"),
        (b'{"speed\xed\xa0\x80": 1, "timestamp": 1}', "invalid UTF-8 in a string"),
        (DEEP, "nested too deeply"),
        (b'{"kind": "frame.v1", "x": ' + DEEP + b"}", "nested too deeply"),
        (b'{"timestamp": 1, "x": ' + DEEP + b"}", "nested too deeply"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
    ],
)
def test_invalid_utf8_and_deep_nesting_are_malformed_json_without_a_traceback(
    payload: bytes, expected: str
) -> None:
    with capture_logs() as logs:
        reason, detail = only_reject(plan_of(payload))
    assert reason is RejectReason.MALFORMED_JSON and expected in detail
    assert "internal error" not in detail
    assert [e for e in logs if e["event"] == "unexpected_error"] == []


def test_an_envelope_nested_too_deeply_is_a_bad_envelope() -> None:
    with capture_logs() as logs:
        plan = pipeline().plan([record(b'{"extra": ' + DEEP + b"}", 1)], NOW_MS)
    assert [e for e in logs if e["event"] == "unexpected_error"] == []
    (rejected,) = plan.rejected
    assert rejected.rejection.reason is RejectReason.BAD_ENVELOPE
    assert "nested too deeply" in rejected.rejection.detail


# -- identity: (train, epoch, seq) and content ---------------------------------------------------


def test_an_identical_redelivery_is_a_duplicate() -> None:
    pipe = pipeline()
    data = js(frame(5, epoch=9)).encode()
    assert len(plan_of(data, pipe=pipe).outgoing) == 1
    again = plan_of(data, pipe=pipe, start=10)
    assert (again.outgoing, again.rejected, again.duplicates, again.conflicts) == ([], [], 1, 0)


def test_a_backfilled_copy_of_a_live_frame_is_a_duplicate() -> None:
    """The same frame sent live, then again (PUBACK lost) in a backfill batch, marked backfill,
    received later: same content, a duplicate; the batch's new frame is forwarded."""
    pipe = pipeline()
    plan_of(js(frame(5)).encode(), pipe=pipe)
    batch = {"kind": "frames.v1", "train": TRAIN, "frames": [frame(5, backfill=True), frame(6)]}
    plan = plan_of(js(batch).encode(), pipe=pipe, start=10)
    assert [f.seq for f in accepted(plan)] == [6] and plan.duplicates == 1 and not plan.rejected


def test_other_content_under_a_seen_identity_is_a_conflict_kept_with_both_digests() -> None:
    pipe = pipeline()
    first = plan_of(js(frame(5)).encode(), pipe=pipe)
    (kept,) = accepted(first)
    other = js(frame(5, readings={"speed": 12.0})).encode()
    plan = plan_of(other, pipe=pipe, start=10)
    assert plan.outgoing == [] and plan.conflicts == 1 and plan.duplicates == 0
    (rejected,) = plan.rejected
    r = rejected.rejection
    assert r.reason is RejectReason.SEQ_CONFLICT and r.raw == other and r.device == TRAIN
    theirs = pipe.express.digest.of_accepted(kept)
    assert f"seq 5 epoch 0: accepted content {theirs:08x}, this " in r.detail
    this = r.detail.split(", this ")[1][:8]
    assert int(this, 16) not in (0, theirs)


def test_a_conflict_inside_one_batch_is_kept_and_the_rest_forwarded() -> None:
    batch = {
        "kind": "frames.v1",
        "train": TRAIN,
        "frames": [frame(1), frame(2), frame(1, readings={"speed": 1.0}), frame(3)],
    }
    plan = plan_of(js(batch).encode())
    assert [f.seq for f in accepted(plan)] == [1, 2, 3] and plan.conflicts == 1
    (rejected,) = plan.rejected
    assert rejected.rejection.reason is RejectReason.SEQ_CONFLICT
    assert rejected.rejection.detail.startswith("1 frame(s) already accepted with other content")


def test_a_restarted_counter_with_a_new_epoch_is_new_data() -> None:
    """Spool lost, storage replaced: the counter starts at 0 again under a new epoch."""
    pipe = pipeline()
    old = [js(frame(s, epoch=111)).encode() for s in range(3)]
    plan_of(*old, pipe=pipe)
    new = [js(frame(s, epoch=222, readings={"speed": 1.0 + s})).encode() for s in range(3)]
    plan = plan_of(*new, pipe=pipe, start=10)
    assert [(f.epoch, f.seq) for f in accepted(plan)] == [(222, 0), (222, 1), (222, 2)]
    assert not plan.rejected and plan.duplicates == 0


def test_the_express_lane_and_the_general_path_agree_on_a_frames_identity() -> None:
    """The same frame delivered twice, once fast (its clock within the tolerance) and once the
    general way (received later: its clock now looks skewed), is a duplicate, not a conflict."""
    pipe = pipeline()
    data = js(frame(5, ts_ms=NOW_MS - 1000, readings={"speed": 80, "odd": 1})).encode()
    fast = js(frame(6, ts_ms=NOW_MS - 1000)).encode()
    for received in (NOW_MS - 900, NOW_MS + 60_000):
        records = [record(envelope(p, TRAIN, received_ms=received), 1) for p in (data, fast)]
        plan = pipe.plan(records, NOW_MS + 60_000)
        for out in plan.outgoing:
            pipe.dedup.mark(out.train, out.epoch, out.seq, out.digest)
    assert plan.duplicates == 2 and not plan.rejected and not plan.outgoing


def test_recovery_rebuilds_identity_and_content() -> None:
    """A new shard owner marks what `telemetry` holds: a replay is then a duplicate and other
    content under the same identity a conflict, epochs kept apart."""
    first = pipeline()
    data = js(frame(5, epoch=3)).encode()
    (forwarded,) = plan_of(data, pipe=first).outgoing
    second = pipeline()
    shard = "shardId-000000000000"
    assert _mark(forwarded.data, shard, second.dedup, second.express.digest) == 1
    assert plan_of(data, pipe=second, start=10).duplicates == 1
    changed = js(frame(5, epoch=3, readings={"speed": 1.0})).encode()
    assert plan_of(changed, pipe=second, start=20).conflicts == 1
    assert len(plan_of(js(frame(5, epoch=4)).encode(), pipe=second).outgoing) == 1
