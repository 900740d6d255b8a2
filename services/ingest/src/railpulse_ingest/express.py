"""The express lane: a train's frames whose readings are all canonical and physically possible go
from payload bytes to `accepted.v1` bytes without a Python object per reading.

Most traffic is like that, and the general path (decode → normalise → encode) spends most of its
time building a `Reading` per channel and formatting every float again. Here the readings object
stays the bytes the train sent:

- msgspec decodes the frame with `readings` left raw, then checks those bytes against a struct of
  the catalogue's channels, each constrained to its physical range: an unknown or aliased name, a
  reading outside the range or not a number fails the check (all in C, no per-reading Python);
- the raw object is re-wrapped as accepted readings by two byte replacements
  (`{"speed":80.5,"odometer":12}` → `{"speed":[80.5,"good"],"odometer":[12,"good"]}`). That is
  exact when every key ends in `":` and every comma is followed by the next key's `"` — checked by
  counting both against the number of channels msgspec found (which also rules out a name given
  twice): keys are canonical names and values JSON numbers, so neither sequence occurs elsewhere.

Anything else (a generic payload, aliases, uncatalogued or invalid readings, a failed identity or
time check, a decode error) returns None and takes the general path, which decides and explains
it exactly as before: the express lane changes the speed, never a decision. Numbers keep the
device's spelling (`12` stays `12`, not `12.0`): the same float to every reader.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

import msgspec

from railpulse_ingest.forward import MAX_RECORD_BYTES
from railpulse_ingest.normalise import Normaliser
from railpulse_shared.contracts import (
    AcceptedFrame,
    Frame,
    FrameBatch,
    Reading,
    RuleEnvelope,
    SourcePosition,
)

__all__ = ["Express", "variant"]

Encoded = tuple[str, int, bytes]
"""(train, seq, accepted.v1 bytes) of one frame."""


def _swap(tp: Any, swaps: dict[Any, Any]) -> Any:
    """`tp` with the types in `swaps` replaced, also inside `Annotated[...]` and `list[...]`."""
    if tp in swaps:
        return swaps[tp]
    origin = get_origin(tp)
    if origin is Annotated:
        base, *metadata = get_args(tp)
        return Annotated[(_swap(base, swaps), *metadata)]
    if origin is list:
        return list[_swap(get_args(tp)[0], swaps)]  # type: ignore[misc]
    return tp


def variant(struct: type[msgspec.Struct], swaps: dict[Any, Any]) -> type[msgspec.Struct]:
    """A struct with the same tag, fields, constraints, defaults and wire names as `struct`,
    but some field types swapped (e.g. `dict[str, float]` → `msgspec.Raw`)."""
    config = struct.__struct_config__
    fields = msgspec.structs.fields(struct)
    return msgspec.defstruct(
        f"{struct.__name__}Express",
        [
            (f.name, _swap(f.type, swaps), msgspec.field(default=f.default))
            if f.default_factory is msgspec.NODEFAULT
            else (f.name, _swap(f.type, swaps), msgspec.field(default_factory=f.default_factory))
            for f in fields
        ],
        tag_field=config.tag_field,
        tag=config.tag,
        rename={f.name: f.encode_name for f in fields},
        omit_defaults=config.omit_defaults,
        forbid_unknown_fields=config.forbid_unknown_fields,
        array_like=config.array_like,
        kw_only=True,
        frozen=True,
        gc=False,
    )


# The device messages with `readings` left undecoded, and accepted.v1 with readings pre-encoded.
_FrameView: Any = variant(Frame, {dict[str, float]: msgspec.Raw})
_BatchView: Any = variant(FrameBatch, {Frame: _FrameView})
_AcceptedWire: Any = variant(AcceptedFrame, {dict[str, Reading]: msgspec.Raw})
_views = msgspec.json.Decoder(_FrameView | _BatchView)
_encode = msgspec.json.Encoder().encode

# How accepted.v1 spells a good reading, around its value: `[` and `,"good"]`.
_OPEN, _CLOSE = _encode(Reading(0.0)).split(b"0.0")
_COLON_OPEN, _CLOSE_COMMA, _CLOSE_BRACE = b":" + _OPEN, _CLOSE + b",", _CLOSE + b"}"


class Express:
    def __init__(self, normaliser: Normaliser) -> None:
        self.normaliser = normaliser
        channels = normaliser.catalogue.channels.values()
        # Every catalogue channel, optional, within its physical range; nothing else.
        check = msgspec.defstruct(
            "GoodReadings",
            [
                (
                    c.name,
                    Annotated[float, msgspec.Meta(ge=c.physical[0], le=c.physical[1])]
                    | msgspec.UnsetType,
                    msgspec.UNSET,
                )
                for c in channels
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        self._check = msgspec.json.Decoder(check)
        self._channels = len(msgspec.structs.fields(check))

    def accept(
        self,
        envelope: RuleEnvelope,
        source: SourcePosition,
        now_ms: int,
        bounds: tuple[int, int],
    ) -> list[Encoded] | None:
        """The encoded accepted frames of a train's frame or batch, or None: take the general
        path. `bounds` are the sensor times accepted now (`Normaliser.time_bounds`)."""
        payload = envelope.payload
        # `find`, not `in`: on bytes, `in` first tries the operand as an int (a raised and
        # discarded TypeError, the cost of a whole search here).
        if payload.find(b'"kind"') < 0:  # a generic sensor: not for this lane
            return None
        try:
            message = _views.decode(payload)
        except msgspec.DecodeError:
            return None
        train = message.train
        if train != envelope.principal:
            return None
        low, high = bounds
        check = self._check.decode
        out = []
        for frame in (message,) if type(message) is _FrameView else message.frames:
            if frame.train != train or not low <= frame.ts_ms <= high:
                return None
            try:
                check(frame.readings)
            except msgspec.DecodeError:
                return None
            readings = bytes(frame.readings)
            if readings.find(b":") >= 0:  # not `{}`: wrap every value as a good reading
                readings = (
                    readings.replace(b":", _COLON_OPEN).replace(b",", _CLOSE_COMMA)[:-1]
                    + _CLOSE_BRACE
                )
            data = _encode(
                _AcceptedWire(
                    train=train,
                    seq=frame.seq,
                    ts_ms=frame.ts_ms,
                    readings=msgspec.Raw(readings),
                    position=frame.position,
                    speed_kmh=frame.speed_kmh,
                    backfill=frame.backfill,
                    received_ms=envelope.received_ms,
                    ingested_ms=now_ms,
                    source=source,
                )
            )
            if len(data) + len(train) > MAX_RECORD_BYTES:
                return None
            out.append((train, frame.seq, data))
        return out
