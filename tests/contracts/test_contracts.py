"""Every event kind: round-trip, golden examples (and older ones: old and new readers read
both), schema compatibility, and bounds on every integer and channel name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from railpulse_shared import codec
from railpulse_shared.contracts import (
    CHANNEL_NAME_CHARS,
    EVENT_TYPES,
    MAX_CHANNEL_NAME,
    MAX_CHANNELS,
    WIRE_TYPES,
    AcceptedFrame,
    Frame,
    FrameBatch,
    RuleEnvelope,
)
from railpulse_shared.errors import ContractError, MalformedPayloadError
from railpulse_shared.schema import (
    SCHEMA_DIR,
    breaking_changes,
    current_schemas,
    narrowed_bounds,
    schema_name,
)

GOLDEN = Path(codec.__file__).parent / "contracts" / "golden"
OLDER = GOLDEN / "older"
"""Golden examples as an earlier release wrote them (before fields with defaults were added)."""
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
    assert (
        json.loads(codec.encode(event)).items()
        >= {k: v for k, v in json.loads(raw).items() if v is not None}.items()
    )


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


def test_narrowed_bounds_are_told_apart_and_refused_unless_allowed() -> None:
    class V1(msgspec.Struct, kw_only=True):
        a: int
        b: str = ""

    class Bounded(msgspec.Struct, kw_only=True):
        a: Annotated[int, msgspec.Meta(ge=0, le=10)]
        b: Annotated[str, msgspec.Meta(max_length=8, pattern="^x+$")] = ""

    class Tighter(msgspec.Struct, kw_only=True):
        a: Annotated[int, msgspec.Meta(ge=1, le=5)]
        b: Annotated[str, msgspec.Meta(max_length=4, pattern="^x+$")] = ""

    class Wider(msgspec.Struct, kw_only=True):
        a: Annotated[int, msgspec.Meta(ge=0, le=20)]
        b: Annotated[str, msgspec.Meta(pattern="^y+$")] = ""

    def schema(t: type) -> dict[str, Any]:
        s = msgspec.json.schema(t)
        s["$defs"] = {"V": next(iter(s["$defs"].values()))}
        s["$ref"] = "#/$defs/V"
        return s

    added = narrowed_bounds(schema(V1), schema(Bounded))
    assert len(added) == 4 and all("added" in p for p in added)
    assert breaking_changes(schema(V1), schema(Bounded)) == added
    assert breaking_changes(schema(V1), schema(Bounded), allow_narrowing=True) == []
    assert breaking_changes(schema(Bounded), schema(Tighter), allow_narrowing=True) == []
    assert len(narrowed_bounds(schema(Bounded), schema(Tighter))) == 3
    wider = breaking_changes(schema(Bounded), schema(Wider), allow_narrowing=True)
    assert sorted(wider) == [
        "$.a: `maximum` 10 became 20",
        "$.b: `maxLength` removed",
        "$.b: `pattern` '^x+$' became '^y+$'",
    ]


def _integers(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        found = [(path, node)] if node.get("type") == "integer" else []
        for key, value in node.items():
            found += _integers(value, f"{path}/{key}")
        return found
    if isinstance(node, list):
        return [hit for i, v in enumerate(node) for hit in _integers(v, f"{path}[{i}]")]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_every_integer_has_a_range_that_fits_64_bits(name: str) -> None:
    for path, node in _integers(current_schemas()[name]):
        if "enum" in node:
            continue
        assert node.get("minimum", -1) >= 0 and node.get("maximum", 2**63) <= 2**63 - 1, path


def _without(type_: type[msgspec.Struct], *names: str) -> type[msgspec.Struct]:
    """`type_` as a reader of an earlier release saw it: without the fields added since."""
    config = type_.__struct_config__
    return msgspec.defstruct(
        type_.__name__,
        [
            (f.name, f.type, f.default if f.default is not msgspec.NODEFAULT else msgspec.NODEFAULT)
            if f.default_factory is msgspec.NODEFAULT
            else (f.name, f.type, msgspec.field(default_factory=f.default_factory))
            for f in msgspec.structs.fields(type_)
            if f.name not in names
        ],
        kw_only=True,
        tag_field=config.tag_field,
        tag=config.tag,
        array_like=config.array_like,
    )


ADDED_SINCE = {Frame: ("epoch",), AcceptedFrame: ("epoch",)}


@pytest.mark.parametrize("type_", list(ADDED_SINCE), ids=[t.__name__ for t in ADDED_SINCE])
def test_old_and_new_readers_read_old_and_new_events(type_: type[msgspec.Struct]) -> None:
    name = schema_name(type_)
    new, old = (GOLDEN / f"{name}.json").read_bytes(), (OLDER / f"{name}.json").read_bytes()
    current = codec.decode_event(old)  # a new reader, an event of an earlier release
    assert type(current) is type_ and current.epoch == 0  # type: ignore[attr-defined]
    assert codec.decode_event(new).epoch != 0  # type: ignore[attr-defined]
    reader = msgspec.json.Decoder(_without(type_, *ADDED_SINCE[type_]))
    earlier = reader.decode(new)  # an old reader skips what it does not know
    assert msgspec.structs.asdict(earlier) == {
        k: v
        for k, v in msgspec.structs.asdict(codec.decode_event(new)).items()  # type: ignore[arg-type]
        if k not in ADDED_SINCE[type_]
    }


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
        (
            {"device_id": "sensor-101", "timestamp": 1700100000, "temperature": 22, "humidity": 55},
            {"temperature": 22.0, "humidity": 55.0},
        ),
        (
            {"device_id": "sensor-104", "timestamp": 1700101500, "temperature": 30},
            {"temperature": 30.0},
        ),
        (
            {
                "temperature": 40.1,
                "cpu": 3,
                "ram": 50,
                "hd": 70,
                "timestamp": 1700000000.5,
                "timestamp_sent": "2023-11-14 22",
            },
            {"temperature": 40.1, "cpu": 3.0, "ram": 50.0, "hd": 70.0},
        ),
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
    readings=st.dictionaries(
        st.from_regex(rf"[{CHANNEL_NAME_CHARS}]{{1,{MAX_CHANNEL_NAME}}}", fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False),
        max_size=8,
    ),
    epoch=st.integers(0, 2**63 - 1),
    backfill=st.booleans(),
)


@given(st.lists(frames, min_size=1, max_size=5))
def test_frame_batches_round_trip(batch: list[Frame]) -> None:
    message = FrameBatch(train=batch[0].train, frames=batch)
    assert codec.decode_device_message(codec.encode(message)) == message


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "speed\n", "\nspeed", "a b", "a\tb", "é", "", "x" * (MAX_CHANNEL_NAME + 1), "a,b"],
)
def test_channel_names_outside_the_charset_are_refused(name: str) -> None:
    frame = {"kind": "frame.v1", "train": "t", "seq": 1, "ts_ms": 1, "readings": {name: 1.0}}
    with pytest.raises(ContractError) as info:
        codec.decode_event(json.dumps(frame).encode())
    assert info.value.path == "$.readings (a key)"
    with pytest.raises(ContractError):
        codec.parse_generic({"timestamp": 1, name: 1.0})


def test_channel_names_of_the_catalogue_and_its_aliases_pass() -> None:
    from railpulse_shared.catalogue import load_catalogue

    names = load_catalogue().names()
    frame = {"kind": "frame.v1", "train": "t", "seq": 1, "ts_ms": 1}
    for chunk in range(0, len(names), MAX_CHANNELS):
        readings = dict.fromkeys(names[chunk : chunk + MAX_CHANNELS], 1.0)
        assert codec.decode_event(json.dumps(frame | {"readings": readings}).encode())
        assert codec.parse_generic({"timestamp": 1, **readings}).readings == readings


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            b'{"kind": "frame.v1", "train": "t\xff"}',
            "invalid UTF-8 in a string (invalid start byte): b't\\xff'",
        ),
        (
            b'{"kind": "frame.v1", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
            "JSON nested too deeply",
        ),
    ],
)
def test_undecodable_bytes_are_malformed(data: bytes, detail: str) -> None:
    with pytest.raises(MalformedPayloadError) as info:
        codec.decode_event(data)
    assert info.value.message == detail
