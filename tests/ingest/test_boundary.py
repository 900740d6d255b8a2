"""What ingest decides for each shape of input, at its boundary (no network).

The eight device cases of docs/design.md, the seed 004 shape, train frames
and batches, KPL-aggregated records (made by aws-kinesis-agg), and each reject reason.
"""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from ingest_support import envelope, frame, record

from railpulse_ingest.handler import build_pipeline
from railpulse_ingest.pipeline import Pipeline, Plan
from railpulse_ingest.reject import RawKind
from railpulse_ingest.settings import IngestSettings
from railpulse_shared import codec
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import (
    AcceptedFrame,
    DeviceKind,
    FrameBatch,
    Quality,
    RejectReason,
)

SEED003 = [
    b'{"device_id": "sensor-101", "timestamp": 1700100000, "temperature": 22, "humidity": 55}',
    b'{"device_id": "sensor-102", "timestamp": 1700100500, "temperature": 75, "humidity": 40}',
    b'{"device_id": "sensor-103", "timestamp": 1700101000, "temperature": 21, "humidity": 10}',
    b'{"device_id": "sensor-104", "timestamp": 1700101500, "temperature": 30}',
    b"Invalid JSON Data",
    b'{"device_id": "sensor-105", "timestamp": 1700103000, "temperature": 150, "humidity": 30}',
    b'{"device_id": "sensor-106", "timestamp": 1700103500, "temperature": -10, "humidity": -5}',
    b'{"device_id": "sensor-107", "timestamp": 1700104000, "temperature": 25, "humidity": 65, "pressure": 1012}',
]


def pipeline() -> Pipeline:
    return build_pipeline(load_settings(IngestSettings, env={}))


def run(*payloads: tuple[bytes, str]) -> tuple[Plan, list[AcceptedFrame]]:
    records = [record(envelope(p, who), i) for i, (p, who) in enumerate(payloads)]
    plan = pipeline().plan(records, int(time.time() * 1000))
    accepted = [msgspec.json.decode(o.data, type=AcceptedFrame) for o in plan.outgoing]
    return plan, accepted


def test_seed003_cases_at_the_ingest_boundary() -> None:
    principals = [f"sensor-10{i}" for i in range(1, 5)] + ["sensor-10x"]
    principals += [f"sensor-10{i}" for i in range(5, 8)]
    plan, accepted = run(*zip(SEED003, principals, strict=True))
    by_device = {a.train: a for a in accepted}
    assert sorted(by_device) == [f"sensor-10{i}" for i in range(1, 8)]  # 7 stored, in order
    assert [o.origin for o in plan.outgoing] == [0, 1, 2, 3, 5, 6, 7]  # the pipeline went on

    def quality(device: str) -> dict[str, tuple[float, Quality]]:
        return {k: (r.value, r.quality) for k, r in by_device[device].readings.items()}

    one = by_device["sensor-101"]
    assert (one.ts_ms, one.seq, one.device_kind) == (
        1_700_100_000_000,
        1_700_100_000_000,
        DeviceKind.SENSOR,
    )
    assert quality("sensor-101") == {
        "temperature": (22, Quality.GOOD),
        "humidity": (55, Quality.GOOD),
    }
    assert quality("sensor-102")["temperature"] == (75, Quality.GOOD)  # the detector alerts on it
    assert quality("sensor-103")["humidity"] == (10, Quality.GOOD)
    assert quality("sensor-104") == {"temperature": (30, Quality.GOOD)}  # missing is not an error
    assert quality("sensor-105")["temperature"] == (150, Quality.GOOD)  # extreme is never noise
    assert quality("sensor-106") == {
        "temperature": (-10, Quality.GOOD),
        "humidity": (-5, Quality.INVALID),  # kept, flagged: a sensor fault
    }
    assert quality("sensor-107")["pressure"] == (1012, Quality.GOOD)  # new fields are kept

    (rejected,) = plan.rejected  # case 5
    r = rejected.rejection
    assert r.reason is RejectReason.MALFORMED_JSON
    assert r.raw == b"Invalid JSON Data" and r.raw_kind is RawKind.PAYLOAD
    assert r.device == "sensor-10x" and r.source.sequence_number == "49000000004"


def test_unknown_numeric_fields_are_kept_and_counted() -> None:
    p = pipeline()
    payload = b'{"device_id": "s1", "timestamp": 1700100000, "temperature": 20, "wind_speed": 7.5}'
    plan = p.plan([record(envelope(payload, "s1"), 0)], int(time.time() * 1000))
    (out,) = [msgspec.json.decode(o.data, type=AcceptedFrame) for o in plan.outgoing]
    assert out.readings["wind_speed"].quality is Quality.UNCATALOGUED
    assert p.normaliser.uncatalogued == 1


def test_seed004_shape() -> None:
    payload = json.dumps(
        {
            "temperature": 41,
            "cpu": 0.31,
            "ram": 0.5,
            "hd": 0.7,
            "id_device": 7,
            "timestamp": "2026-03-01 12:34:56.250000",
            "timestamp_sent": "2026-03-01 12",
        }
    ).encode()
    _, (out,) = run((payload, "7"))
    assert out.train == "7" and out.ts_ms == 1_772_368_496_250
    assert set(out.readings) == {"temperature", "cpu", "ram", "hd"}


def test_train_frame_canonical_names_units_and_quality() -> None:
    f = frame("train-7", 3, speed_mps=20.0, main_reservoir_psi=130.0, bearing_temp_2=400.0)
    _, (out,) = run((codec.encode(f), "train-7"))
    assert out.train == "train-7" and out.seq == 3 and out.ts_ms == f.ts_ms
    assert out.readings["speed"].value == pytest.approx(72.0)
    assert out.readings["main_reservoir_pressure"].value == pytest.approx(8.963, abs=1e-3)
    assert out.readings["bearing_temp_2"].quality is Quality.INVALID
    assert out.source is not None and out.source.shard_id == "shardId-000000000000"


def test_batch_becomes_frames_and_duplicates_are_dropped() -> None:
    batch = FrameBatch(train="train-1", frames=[frame("train-1", s) for s in (1, 2, 3)])
    again = codec.encode(frame("train-1", 2))
    plan, accepted = run((codec.encode(batch), "train-1"), (again, "train-1"))
    assert [a.seq for a in accepted] == [1, 2, 3] and plan.duplicates == 1


def test_kpl_aggregated_records_are_split() -> None:
    aggregator = RecordAggregator()
    payloads = [codec.encode(frame("train-9", s)) for s in range(5)] + [b"not json"]
    for i, payload in enumerate(payloads):
        assert aggregator.add_user_record("train-9", envelope(payload, "train-9")) is None, i
    aggregated = aggregator.clear_and_get()
    _, _, data = aggregated.get_contents()
    plan = pipeline().plan([record(data, 1)], int(time.time() * 1000))
    assert [o.seq for o in plan.outgoing] == [0, 1, 2, 3, 4] and plan.user_records == 6
    (rejected,) = plan.rejected
    assert rejected.record.sub_sequence_number == 5
    assert rejected.rejection.source.sub_sequence_number == 5
    assert rejected.rejection.reason is RejectReason.MALFORMED_JSON


def test_corrupt_aggregate_is_judged_as_ordinary_bytes() -> None:
    aggregator = RecordAggregator()
    aggregator.add_user_record("t", envelope(codec.encode(frame()), "train-001"))
    data = bytearray(aggregator.clear_and_get().get_contents()[2])
    data[-1] ^= 0xFF  # the MD5 no longer matches
    plan = pipeline().plan([record(bytes(data), 1)], int(time.time() * 1000))
    assert plan.rejected[0].rejection.reason is RejectReason.BAD_ENVELOPE
    assert plan.rejected[0].rejection.raw == bytes(data)
    assert plan.rejected[0].rejection.raw_kind is RawKind.RECORD


@pytest.mark.parametrize(
    ("payload", "principal", "reason"),
    [
        (codec.encode(frame("train-2")), "train-3", RejectReason.IDENTITY_MISMATCH),
        (
            b'{"device_id": "sensor-1", "timestamp": 1700000000, "t": 1}',
            "sensor-2",
            RejectReason.IDENTITY_MISMATCH,
        ),
        (
            b'{"device_id": "s", "timestamp": 1700000000000, "t": 1}',
            "s",
            RejectReason.TIMESTAMP_OUT_OF_BOUNDS,
        ),  # milliseconds sent as seconds
        (b'{"device_id": "s", "timestamp": 0, "t": 1}', "s", RejectReason.TIMESTAMP_OUT_OF_BOUNDS),
        (
            b'{"kind": "frame.v1", "train": "t", "seq": -1, "ts_ms": 1, "readings": {}}',
            "t",
            RejectReason.SCHEMA_VIOLATION,
        ),
        (b'{"kind": "anomaly.v1", "train": "t"}', "t", RejectReason.UNKNOWN_KIND),
        (
            b'{"device_id": "s", "timestamp": 1700000000, "t": "hot"}',
            "s",
            RejectReason.SCHEMA_VIOLATION,
        ),
        (b"[1, 2]", "s", RejectReason.SCHEMA_VIOLATION),
        (
            b'{"device_id": "s", "timestamp": 1700000000, "t": 1, "pad": "'
            + b"x" * 140_000
            + b'"}',
            "s",
            RejectReason.OVERSIZED,
        ),
        (
            b'{"device_id": "bad id!", "timestamp": 1700000000, "t": 1}',
            "bad id!",
            RejectReason.SCHEMA_VIOLATION,
        ),
    ],
)
def test_reject_reasons(payload: bytes, principal: str, reason: RejectReason) -> None:
    plan, accepted = run((payload, principal))
    assert accepted == []
    (rejected,) = plan.rejected
    assert rejected.rejection.reason is reason, rejected.rejection.detail
    assert rejected.rejection.raw == payload


def test_bad_envelope_keeps_the_record_bytes() -> None:
    plan = pipeline().plan([record(b'{"topic": 1}', 1)], int(time.time() * 1000))
    (rejected,) = plan.rejected
    assert rejected.rejection.reason is RejectReason.BAD_ENVELOPE
    assert rejected.rejection.raw == b'{"topic": 1}' and rejected.rejection.device is None


def test_clock_skew_is_judged_against_the_iot_receipt_time_and_counted() -> None:
    """A train clock minutes behind or up to `ts_max_future_ms` ahead of the IoT receipt time is
    kept, with its sensor time, and counted per device; further ahead it is rejected, with the
    skew in the detail, whenever ingest processes it (here an hour after the receipt)."""
    received = int(time.time() * 1000) - 3_600_000
    pipe = pipeline()

    def at(train: str, skew_ms: int, *, backfill: bool = False) -> bytes:
        body = msgspec.structs.replace(frame(train), ts_ms=received + skew_ms, backfill=backfill)
        return envelope(codec.encode(body), train, received_ms=received)

    records = [
        record(at("ahead", 240_000), 1),
        record(at("behind", -600_000), 2),
        record(at("true", -40), 3),
        record(at("late", -900_000, backfill=True), 4),
        record(at("beyond", 360_000), 5),
    ]
    plan = pipe.plan(records, received + 3_600_000)
    accepted = {
        f.train: f for f in (msgspec.json.decode(o.data, type=AcceptedFrame) for o in plan.outgoing)
    }
    assert set(accepted) == {"ahead", "behind", "true", "late"}
    assert accepted["ahead"].ts_ms == received + 240_000  # the train's own time is kept
    assert pipe.normaliser.skewed == {"ahead": 240_000, "behind": -600_000}
    assert pipe.normaliser.skewed_frames == 2  # a backfilled frame's age is its outage, not skew
    (rejected,) = plan.rejected
    assert rejected.rejection.reason is RejectReason.TIMESTAMP_OUT_OF_BOUNDS
    assert "+360 s from its receipt" in rejected.rejection.detail


def test_clock_skew_becomes_a_metric_and_a_rate_limited_log() -> None:
    import io
    import json

    from structlog.testing import capture_logs

    from railpulse_ingest.handler import IngestHandler
    from railpulse_shared.metrics import Metrics, StreamSink

    out = io.StringIO()
    metrics = Metrics("railpulse", {"service": "ingest"}, StreamSink(out))
    handler = IngestHandler(load_settings(IngestSettings, env={}), metrics=metrics)
    with capture_logs() as logs:
        handler._report_skew({"t1": 240_000, "t2": -600_000})
        handler._report_skew({"t1": 241_000})  # the same skew again: counted, not logged again
        handler._report_skew({"t1": 10_000})  # moved by more than the tolerance: logged
    metrics.flush()
    assert [(e["device"], e["skew_ms"]) for e in logs if e["event"] == "clock_skew"] == [
        ("t1", 240_000),
        ("t2", -600_000),
        ("t1", 10_000),
    ]
    doc = json.loads(out.getvalue())
    assert doc["ClockSkew"] == [240_000, -600_000, 241_000, 10_000]
    assert doc["clock_skew_ms"] == {"t1": 10_000}
