"""Every event kind: round-trip, golden examples, schema compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from railpulse_shared import codec
from railpulse_shared.contracts import EVENT_TYPES, WIRE_TYPES, Frame, FrameBatch, RuleEnvelope
from railpulse_shared.errors import ContractError, MalformedPayloadError
from railpulse_shared.schema import SCHEMA_DIR, breaking_changes, current_schemas, schema_name

GOLDEN = Path(codec.__file__).parent / "contracts" / "golden"
ALL_TYPES = (*EVENT_TYPES, *WIRE_TYPES)
NAMES = [schema_name(t) for t in ALL_TYPES]


def decode_as(type_: type[msgspec.Struct], data: bytes) -> msgspec.Struct:
    if type_ in EVENT_TYPES:
        return codec.decode_event(data)
    return codec.decode_wire(data, type_)  # type: ignore[type-var]


@pytest.mark.parametrize("type_", ALL_TYPES, ids=NAMES)
def test_golden_example_decodes_and_round_trips(type_: type[msgspec.Struct]) -> None:
    raw = (GOLDEN / f"{schema_name(type_)}.json").read_bytes()
    event = decode_as(type_, raw)
    assert type(event) is type_
    again = decode_as(type_, codec.encode(event))
    assert again == event
    # Nothing in the golden file is lost on the way through.
    assert json.loads(codec.encode(event)).items() >= {
        k: v for k, v in json.loads(raw).items() if v is not None
    }.items()


def test_every_contract_has_a_golden_example_and_a_schema() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(NAMES)
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} >= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_schema_has_no_breaking_change(name: str) -> None:
    committed = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    problems = breaking_changes(committed, current_schemas()[name])
    assert not problems, f"{name} changed incompatibly; add a new version instead: {problems}"


@pytest.mark.parametrize("name", NAMES)
def test_committed_schema_is_current(name: str) -> None:
    committed = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    assert committed == current_schemas()[name], "run `make schemas` and commit the result"


def test_compatibility_rule_catches_breaks_and_allows_additions() -> None:
    class V1(msgspec.Struct, kw_only=True):
        a: int
        b: str = ""

    class Added(msgspec.Struct, kw_only=True):
        a: int
        b: str = ""
        c: float = 0.0

    class Required(msgspec.Struct, kw_only=True):
        a: int
        b: str = ""
        c: float

    class Retyped(msgspec.Struct, kw_only=True):
        a: str
        b: str = ""

    class Removed(msgspec.Struct, kw_only=True):
        a: int

    def schema(t: type) -> dict[str, object]:
        s = msgspec.json.schema(t)
        # Same struct name in every version, as a real edit of one Struct would be.
        s["$defs"] = {"V": next(iter(s["$defs"].values()))}
        s["$ref"] = "#/$defs/V"
        return s

    assert breaking_changes(schema(V1), schema(Added)) == []
    assert breaking_changes(schema(V1), schema(Required)) == ["$.c: new required field"]
    assert breaking_changes(schema(V1), schema(Retyped))
    assert breaking_changes(schema(V1), schema(Removed)) == ["$.b: removed"]


def test_old_readers_skip_unknown_fields() -> None:
    raw = (GOLDEN / "frame.v1.json").read_bytes()
    extended = json.loads(raw) | {"added_in_a_later_release": 1}
    frame = codec.decode_event(json.dumps(extended).encode())
    assert isinstance(frame, Frame) and frame.seq == 4211


def test_contract_errors_name_the_path() -> None:
    bad = {"kind": "frame.v1", "train": "t1", "seq": 1, "ts_ms": 1, "readings": {"x": "hot"}}
    with pytest.raises(ContractError) as info:
        codec.decode_event(json.dumps(bad).encode())
    assert info.value.path == "$.readings[...]"
    with pytest.raises(MalformedPayloadError):
        codec.decode_event(b"Invalid JSON Data")
    with pytest.raises(ContractError, match=r"Invalid value 'frame\.v9'"):
        codec.decode_event(b'{"kind": "frame.v9"}')


def test_envelope_carries_any_bytes() -> None:
    envelope = RuleEnvelope(topic="iot/sensors", principal="s1", received_ms=1, payload=b"\x00\xff")
    assert codec.decode_envelope(codec.encode(envelope)) == envelope


@pytest.mark.parametrize(
    ("document", "readings"),
    [
        ({"device_id": "sensor-101", "timestamp": 1700100000, "temperature": 22, "humidity": 55},
         {"temperature": 22.0, "humidity": 55.0}),
        ({"device_id": "sensor-104", "timestamp": 1700101500, "temperature": 30},
         {"temperature": 30.0}),
        ({"temperature": 40.1, "cpu": 3, "ram": 50, "hd": 70, "timestamp": 1700000000.5,
          "timestamp_sent": "2023-11-14 22"}, {"temperature": 40.1, "cpu": 3.0, "ram": 50.0, "hd": 70.0}),
    ],
)
def test_generic_payloads_parse(document: dict[str, object], readings: dict[str, float]) -> None:
    assert codec.parse_generic(document).readings == readings


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"device_id": "s", "temperature": 1}, "$.timestamp"),
        ({"device_id": "s", "timestamp": "now"}, "$.timestamp"),
        ({"device_id": "s", "timestamp": 1, "temperature": "hot"}, "$.temperature"),
        ({"device_id": "s", "timestamp": 1, "door": True}, "$.door"),
        ({"device_id": "", "timestamp": 1}, "$.device_id"),
    ],
)
def test_generic_payload_errors(document: dict[str, object], path: str) -> None:
    with pytest.raises(ContractError) as info:
        codec.parse_generic(document)
    assert info.value.path == path


frames = st.builds(
    Frame,
    train=st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True),
    seq=st.integers(min_value=0, max_value=2**53),
    ts_ms=st.integers(min_value=0, max_value=2**45),
    readings=st.dictionaries(st.text(min_size=1, max_size=12), st.floats(allow_nan=False, allow_infinity=False)),
    backfill=st.booleans(),
)


@given(st.lists(frames, min_size=1, max_size=5))
def test_frame_batches_round_trip(batch: list[Frame]) -> None:
    message = FrameBatch(train=batch[0].train, frames=batch)
    assert codec.decode_device_message(codec.encode(message)) == message
