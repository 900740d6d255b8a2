"""The fast paths change the speed, never a decision.

- The express lane (`railpulse_ingest.express`) gives, for every payload it takes, the very
  accepted frames the general path (decode → normalise → encode) gives (with the same identity
  and content digest, which de-duplication keys on), the same rejection, and the same counters;
  for every payload it declines, the general path decides. Neither raises anything but a
  rejection, whatever the input: numbers past 2^63, times past 9999, channel names with NUL or
  control characters or too long, too many channels, invalid UTF-8, nesting too deep.
- The envelope's fast decode (pybase64) accepts exactly what the contract's decoder accepts, with
  the same payload bytes.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from railpulse_ingest.decode import decode_envelope, decode_payload
from railpulse_ingest.dedup import ContentDigest
from railpulse_ingest.errors import RejectError
from railpulse_ingest.express import Express, encoded
from railpulse_ingest.normalise import Normaliser
from railpulse_shared import codec
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import MAX_CHANNELS, RuleEnvelope, SourcePosition
from railpulse_shared.contracts.telemetry import MAX_EPOCH_MS
from railpulse_shared.errors import ContractError

CATALOGUE = load_catalogue()
NOW_MS = int(time.time() * 1000)
RECEIVED_MS = NOW_MS - 40
TOLERANCE_MS = 30_000
FUTURE_MS = 300_000
SOURCE = SourcePosition(
    stream="telemetry-raw", shard_id="shardId-000000000000", sequence_number="7"
)
PRINCIPALS = ["train-001", "train-002", "sensor-9"]


def normaliser() -> Normaliser:
    return Normaliser(
        CATALOGUE,
        ts_min_ms=946_684_800_000,
        ts_max_future_ms=FUTURE_MS,
        clock_skew_tolerance_ms=TOLERANCE_MS,
    )


def _values(low: float, high: float) -> st.SearchStrategy[Any]:
    """Mostly inside the physical range, with its edges, just outside it, integers and oddities."""
    inside = st.floats(low, high)
    return st.one_of(
        inside,
        inside,
        inside,
        st.sampled_from([low, high, float(int(low)), int(high)]),
        st.sampled_from([low - 1e-9 * max(1.0, abs(low)) - 1e-9, high + 1e-6, -1e300, 1e300]),
        st.integers(int(low), int(high)),
        st.sampled_from([True, None, "7", [1.0]]),
    )


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` 11 times in 12, else `odd` (hostile cases stay frequent, not dominant)."""
    # Not `st.integers(0, 11)`: hypothesis draws the bounds of a range far more often.
    return st.sampled_from([True] * 11 + [False]).flatmap(lambda ok: usual if ok else odd)


_channels = sorted(CATALOGUE.channels.values(), key=lambda c: c.name)
_reading = st.sampled_from(_channels).flatmap(
    lambda c: st.tuples(st.just(c.name), _values(*c.physical))
)
_odd_name = st.sampled_from([n for n in CATALOGUE.names() if n not in CATALOGUE.channels]) | (
    st.sampled_from(["x", "kind", "Speed", "bearing:1", "a/b", "x" * 64])
)
_bad_name = (
    st.sampled_from(
        ["speed ", "a,b", "", "x" * 65, "a\u0000b", "speed\n", "\nspeed", "a\tb", "\u007f"]
    )
    | st.sampled_from(["é", "a b", 'a"b', "\\"])
    | st.text(max_size=4)
)
_odd_reading = st.tuples(_odd_name, st.floats(-1e6, 1e6) | st.integers(-5, 5))
_bad_reading = st.tuples(_bad_name, st.floats(-1e6, 1e6) | st.integers(-5, 5))
_too_many = st.integers(MAX_CHANNELS - 2, MAX_CHANNELS + 2).flatmap(
    lambda n: st.sampled_from(
        [
            [(f"x{i}", 1.0) for i in range(n)],  # distinct, uncatalogued
            [("speed", 80.0)] * n,  # one name many times: one channel
            [(c.name, c.physical[0]) for c in _channels] + [(f"x{i}", 1) for i in range(n)],
        ]
    )
)
readings = _mostly(
    st.lists(_reading, max_size=12) | st.lists(_reading | _odd_reading, max_size=6),
    _too_many | st.lists(_reading | _bad_reading, min_size=1, max_size=4),
)
_seqs = _mostly(
    st.integers(-1, 10**12),
    st.sampled_from([0, 2**63 - 1, 2**63, 123456789012345678901234567890, -(2**63), -(2**64)]),
)
_epochs = _mostly(st.integers(0, 2**53), st.sampled_from([-1, 2**63 - 1, 2**63, 10**30]))
_times = (
    st.integers(RECEIVED_MS - 20_000, RECEIVED_MS + 20_000)
    | st.sampled_from(
        [
            RECEIVED_MS,
            RECEIVED_MS - TOLERANCE_MS,
            RECEIVED_MS - TOLERANCE_MS - 1,
            RECEIVED_MS + TOLERANCE_MS,
            RECEIVED_MS + TOLERANCE_MS + 1,
            RECEIVED_MS + FUTURE_MS,
            RECEIVED_MS + FUTURE_MS + 1,
            RECEIVED_MS - 3_600_000,
            946_684_800_000 - 1,
        ]
    )
    | st.integers(RECEIVED_MS - 60_000, RECEIVED_MS + 60_000)
)
_times = _mostly(_times, st.sampled_from([-1, 0, MAX_EPOCH_MS, MAX_EPOCH_MS + 1, 2**63, 10**30]))


@st.composite
def train_frames(draw: st.DrawFn, train: str) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "kind": "frame.v1",
        "train": draw(st.sampled_from([train, train, "train-003"])),
        "seq": draw(_seqs),
        "ts_ms": draw(_times),
        "readings": draw(readings),  # pairs: JSON text may repeat a name
    }
    if draw(st.booleans()):
        frame["epoch"] = draw(_epochs)
    if draw(st.booleans()):
        frame["backfill"] = draw(st.booleans())
    if draw(st.booleans()):
        frame["speed_kmh"] = draw(st.floats(0, 300) | st.just(-1.0))
    if draw(st.booleans()):
        frame["position"] = draw(
            st.sampled_from([[48.1, 2.3], [91.0, 0.0], {"lat": 48.1, "lon": 2.3}])
        )
    return frame


@st.composite
def generic_payloads(draw: st.DrawFn, device: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "timestamp": draw(_times.map(lambda ms: ms / 1000) | st.sampled_from([1e306, -1.0, 1e20]))
    }
    if draw(st.booleans()):
        doc["device_id"] = draw(st.sampled_from([device, device, "sensor-8", None, "", 5]))
    if draw(st.booleans()):
        doc["timestamp_sent"] = draw(st.sampled_from(["2026-11-29 06:00:00", None, 3]))
    doc["readings"] = draw(readings)
    return doc


def _pairs_json(pairs: list[tuple[str, Any]], sep: tuple[str, str], escape: bool) -> str:
    """A JSON object from (name, value) pairs, repeats kept; optionally every name \\u-escaped."""
    item_sep, key_sep = sep

    def key(name: str) -> str:
        if escape:
            return '"' + "".join(f"\\u{ord(ch):04x}" for ch in name) + '"'
        return json.dumps(name)

    return "{" + item_sep.join(f"{key(k)}{key_sep}{json.dumps(v)}" for k, v in pairs) + "}"


def _to_json(doc: Any, sep: tuple[str, str], escape: bool) -> str:
    if isinstance(doc, dict):
        item_sep, key_sep = sep
        parts = []
        for k, v in doc.items():
            if k == "readings":
                text = _pairs_json(v, sep, escape)
            elif k == "frames":
                text = "[" + item_sep.join(_to_json(f, sep, escape) for f in v) + "]"
            else:
                text = _to_json(v, sep, escape)
            parts.append(f"{json.dumps(k)}{key_sep}{text}")
        return "{" + item_sep.join(parts) + "}"
    return json.dumps(doc)


def _generic_json(doc: dict[str, Any], sep: tuple[str, str], escape: bool) -> str:
    flat = [(k, v) for k, v in doc.items() if k != "readings"] + doc["readings"]
    return _pairs_json(flat, sep, escape)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    principal = draw(st.sampled_from(PRINCIPALS))
    sep = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " : ")]))
    escape = draw(st.integers(0, 9)) == 0
    shape = draw(st.sampled_from(["frame", "frame", "batch", "generic"]))
    if shape == "frame":
        text = _to_json(draw(train_frames(principal)), sep, escape)
    elif shape == "batch":
        frames = draw(st.lists(train_frames(principal), max_size=3))
        batch = {"kind": "frames.v1", "train": principal, "frames": frames}
        text = _to_json(batch, sep, escape)
    else:
        text = _generic_json(draw(generic_payloads(principal)), sep, escape)
    data = text.encode()
    hostile = draw(st.sampled_from([None] * 28 + ["utf-8", "nesting"]))
    if hostile == "utf-8":  # a byte that is not UTF-8, somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[at:]
    elif hostile == "nesting":  # a value nested deeper than any decoder recurses
        depth = draw(st.sampled_from([10, 5_000, 20_000]))
        data = data[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    return principal, data


def general(norm: Normaliser, envelope: RuleEnvelope) -> list[tuple[str, int, int, int, bytes]]:
    digest = ContentDigest([c.name for c in CATALOGUE.channels.values()])
    frames = norm.accept(decode_payload(envelope.payload), envelope, SOURCE, NOW_MS)
    return [encoded(f, digest) for f in frames]


def outcome(run: Any) -> tuple[str, Any]:
    try:
        return "accepted", [(t, e, s, h, codec.decode_event(d)) for t, e, s, h, d in run()]
    except RejectError as exc:
        return "rejected", exc.reason


def counters(norm: Normaliser) -> tuple[int, int, dict[str, int]]:
    return norm.uncatalogued, norm.skewed_frames, dict(norm.skewed)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_express_lane_decides_as_the_general_path(case: tuple[str, bytes]) -> None:
    principal, payload = case
    envelope = RuleEnvelope(
        topic=f"trains/{principal}/telemetry",
        principal=principal,
        received_ms=RECEIVED_MS,
        payload=payload,
    )
    fast, slow = normaliser(), normaliser()
    express = Express(fast)

    def pipeline() -> list[tuple[str, int, int, int, bytes]]:
        taken = express.accept(envelope, SOURCE, NOW_MS)
        event("express" if taken is not None else "general")
        return taken if taken is not None else general(fast, envelope)

    result = outcome(pipeline)
    event(result[0] if result[0] == "accepted" else f"rejected: {result[1]}")
    assert result == outcome(lambda: general(slow, envelope))
    assert counters(fast) == counters(slow)


def _frame_payload(train: str, ts_ms: int, backfill: bool = False) -> dict[str, Any]:
    values = {c.name: round((c.operating[0] + c.operating[1]) / 2, 2) for c in _channels[:33]}
    return {
        "kind": "frame.v1",
        "train": train,
        "seq": 5,
        "ts_ms": ts_ms,
        "readings": values,
        "position": [48.1, 2.3],
        "speed_kmh": 80.5,
        "backfill": backfill,
    }


@pytest.mark.parametrize(
    "payload",
    [
        _frame_payload("train-001", RECEIVED_MS - 500),
        {
            "kind": "frames.v1",
            "train": "train-001",
            "frames": [
                _frame_payload("train-001", RECEIVED_MS - 3_600_000 + i, True) for i in range(3)
            ],
        },
        {
            "device_id": "train-001",
            "timestamp": RECEIVED_MS / 1000,
            "temperature": 21.5,
            "humidity": 40,
        },
    ],
    ids=["frame", "batch", "generic"],
)
def test_ordinary_traffic_takes_the_express_lane(payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    envelope = RuleEnvelope(topic="t", principal="train-001", received_ms=RECEIVED_MS, payload=data)
    taken = Express(normaliser()).accept(envelope, SOURCE, NOW_MS)
    assert taken is not None
    assert outcome(lambda: taken) == outcome(lambda: general(normaliser(), envelope))


_b64_text = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\\", max_size=24
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        payload = json.dumps(base64.b64encode(draw(st.binary(max_size=40))).decode())
    elif draw(st.booleans()):
        payload = json.dumps(draw(_b64_text))
    else:
        payload = draw(st.sampled_from(['"QQ"', '"QQ=="', '"QUJD\\/w=="', "null", "12", '"Q Q=="']))
    fields = {
        "topic": '"trains/train-001/telemetry"',
        "principal": draw(st.sampled_from(['"train-001"', '""', "7"])),
        "received_ms": draw(st.sampled_from(["1764400000000", "-1", '"x"'])),
        "payload": payload,
    }
    drop = draw(st.sampled_from([None, "topic", "payload", "received_ms"]))
    if draw(st.booleans()):
        fields["extra"] = "1"
    body = ",".join(f'"{k}":{v}' for k, v in fields.items() if k != drop)
    return ("{" + body + "}").encode()


@settings(max_examples=400, deadline=None)
@given(envelopes() | st.binary(max_size=40))
def test_envelope_fast_decode_accepts_what_the_contract_accepts(data: bytes) -> None:
    try:
        expected: RuleEnvelope | None = codec.decode_envelope(data)
    except ContractError:
        expected = None
    try:
        got: RuleEnvelope | None = decode_envelope(data)
    except RejectError as exc:
        assert exc.reason.value == "bad_envelope"
        got = None
    assert got == expected


def test_escaped_names_are_canonical_names() -> None:
    """The byte rewrite relies on it: every `:` and `,` of checked readings is structural."""
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", c.name) for c in _channels)
