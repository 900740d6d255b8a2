"""Small parts: backoff, frame encoding and batching, settings and --help, generic payloads."""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from railpulse_edge.backoff import Backoff
from railpulse_edge.frames import METERING_UNIT, build_frame, pack_batch
from railpulse_edge.settings import EdgeSettings, build_parser, parse_settings
from railpulse_edge.sim.generic import GENERIC_CASES
from railpulse_edge.sim.model import CHANNELS, FleetModel
from railpulse_shared.codec import decode_device_message, parse_generic
from railpulse_shared.contracts import MAX_BATCH_FRAMES, Frame, FrameBatch
from railpulse_shared.errors import ConfigError


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(1))
    ceilings, delays = [], []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not a fixed schedule
    backoff.reset()
    assert backoff.ceiling() == 0.5


def _frame_bytes(seq: int) -> bytes:
    snap = FleetModel(1, seed=seq).step(1.0)
    readings = dict(zip(CHANNELS, snap.values[0].tolist(), strict=True))
    return build_frame("train-042", seq, 1_800_000_000_000 + seq, readings,
                       speed_kmh=float(snap.speed_kmh[0]), position=(float(snap.lat[0]), float(snap.lon[0])))


def test_a_full_live_frame_fits_one_metering_unit() -> None:
    body = _frame_bytes(7)
    assert len(body) < METERING_UNIT
    frame = decode_device_message(body)
    assert isinstance(frame, Frame) and frame.seq == 7 and not frame.backfill
    assert set(frame.readings) == set(CHANNELS)


def test_nan_readings_are_left_out() -> None:
    frame = decode_device_message(build_frame("t", 0, 1, {"speed": float("nan"), "line_voltage": 25.0}))
    assert isinstance(frame, Frame) and frame.readings == {"line_voltage": 25.0}


def test_backfill_batches_fill_the_budget_in_order_and_mark_frames() -> None:
    bodies = [_frame_bytes(i) for i in range(50)]
    payload, n = pack_batch("train-042", bodies, 4 * METERING_UNIT)
    assert len(payload) <= 4 * METERING_UNIT
    assert len(payload) + len(bodies[n]) > 4 * METERING_UNIT - 200  # nearly full
    batch = decode_device_message(payload)
    assert isinstance(batch, FrameBatch) and len(batch.frames) == n > 10
    assert [f.seq for f in batch.frames] == list(range(n))
    assert all(f.backfill for f in batch.frames)
    _one, n1 = pack_batch("train-042", bodies, 10)  # always at least one frame
    assert n1 == 1


def test_frames_carry_the_counter_epoch_live_and_in_backfill() -> None:
    body = build_frame("t", 7, 1_764_374_400_000, {"speed": 80.0}, epoch=123_456_789)
    frame = decode_device_message(body)
    assert isinstance(frame, Frame) and (frame.epoch, frame.seq) == (123_456_789, 7)
    payload, _ = pack_batch("t", [body], 4 * METERING_UNIT)
    batch = decode_device_message(payload)
    assert isinstance(batch, FrameBatch) and batch.frames[0].epoch == 123_456_789
    old = decode_device_message(build_frame("t", 7, 1_764_374_400_000, {"speed": 80.0}))
    assert isinstance(old, Frame) and old.epoch == 0 and b"epoch" not in build_frame("t", 7, 1, {})


def test_backfill_batches_stay_within_the_contracts_frame_count() -> None:
    """Tiny frames (a train with few channels) would fit more than a batch may hold in the byte
    budget: the batch stops at `MAX_BATCH_FRAMES`, and ingest accepts it."""
    bodies = [build_frame("t", i, 1_764_374_400_000 + i, {}) for i in range(MAX_BATCH_FRAMES + 50)]
    payload, n = pack_batch("t", bodies, 131_072)
    assert n == MAX_BATCH_FRAMES and len(payload) <= 131_072
    batch = decode_device_message(payload)
    assert isinstance(batch, FrameBatch) and len(batch.frames) == MAX_BATCH_FRAMES


def test_settings_from_env_and_flags() -> None:
    env = {"RAILPULSE_THING": "train-007", "RAILPULSE_MQTT_PORT": "18883", "RAILPULSE_CA_FILE": "/ca",
           "RAILPULSE_CERTS_DIR": "/certs"}
    s = parse_settings(["--rate-hz", "2", "--basic-ingest-rule", "telemetry"], env)
    assert s.mqtt_port == 18883 and s.rate_hz == 2.0
    assert s.publish_topic == "$aws/rules/telemetry/trains/train-007/telemetry"
    link = s.link_config()
    assert str(link.cert_file) == "/certs/train-007.crt" and link.client_id == "train-007"
    assert parse_settings([], env).publish_topic == "trains/train-007/telemetry"
    with pytest.raises(ConfigError, match="RAILPULSE_THING"):
        parse_settings([], {})
    with pytest.raises(ConfigError):
        parse_settings(["--backfill-max-bytes", "200000"], env)


def test_help_explains_every_option() -> None:
    text = build_parser().format_help()
    for field in msgspec.structs.fields(EdgeSettings):
        flag = "--" + field.name.replace("_", "-")
        assert flag in text, flag
        assert f"RAILPULSE_{field.name.upper()}" in text.replace("\n", " ").replace(" ", "") or \
            f"RAILPULSE_{field.name.upper()}" in text


def test_generic_payloads_are_the_acceptance_table() -> None:
    assert len(GENERIC_CASES) == 8
    devices = [d for d, _ in GENERIC_CASES]
    assert devices[0] == "sensor-101" and devices[-1] == "sensor-107"
    assert GENERIC_CASES[4][1] == b"Invalid JSON Data"
    parsed = parse_generic(json.loads(GENERIC_CASES[7][1]))
    assert parsed.readings == {"temperature": 25.0, "humidity": 65.0, "pressure": 1012.0}
