"""The express lane: a train's frames whose readings are all canonical and physically possible go
from payload bytes to `accepted.v1` bytes without a Python object per reading.

Most traffic is like that, and the general path (decode → normalise → encode) spends most of its
time building a `Reading` per channel and formatting every float again. Here the readings object
stays the bytes the train sent:

- msgspec decodes the frame with `readings` left raw, then checks those bytes against a struct of
  the catalogue's channels, each constrained to its physical range: an unknown or aliased name, a
  reading outside the range or not a number fails the check (in C, no per-reading Python);
- the raw object becomes accepted readings by two byte replacements, `:` → `:[` and
  `,` → `,"good"],` (and the closing brace): `{"speed":80.5,"odometer":12}` →
  `{"speed":[80.5,"good"],"odometer":[12,"good"]}`. That is exact because, once checked, the keys
  are canonical names (no `:` or `,`, nor an escape of one: that would not be a canonical name)
  and the values JSON numbers, so every `:` and `,` is structural; whitespace stays valid JSON.
  A name given twice stays twice, each value checked good, and every reader keeps the last one,
  as the general path does.

Anything else (aliases, uncatalogued or invalid readings, a failed identity or time check, a
decode error) returns None and takes the general path, which decides and explains it exactly as
before: the express lane changes the speed, never a decision. Numbers keep the device's spelling
(`12` stays `12`, not `12.0`): the same float to every reader.

A generic sensor's flat payload (seed 003) whose readings all have catalogue names is decoded
straight into the `GenericReading` that `codec.parse_generic` would make of the dict (no dict, no
per-field Python checks) and then normalised as usual.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from railpulse_ingest._variant import variant
from railpulse_ingest.errors import RejectError
from railpulse_ingest.forward import MAX_RECORD_BYTES
from railpulse_ingest.normalise import Normaliser
from railpulse_shared.contracts import (
    AcceptedFrame,
    Frame,
    FrameBatch,
    GenericReading,
    Reading,
    RejectReason,
    RuleEnvelope,
    SourcePosition,
)
from railpulse_shared.contracts.telemetry import TrainId

__all__ = ["Encoded", "Express", "encoded"]

Encoded = tuple[str, int, bytes]
"""(train, seq, accepted.v1 bytes) of one frame."""


# The device messages with `readings` left undecoded, and accepted.v1 with readings pre-encoded.
# Train ids are plain strings here, checked once per id (`Express._known_train`): msgspec checks a
# pattern by calling Python's `re`, which costs more than the rest of the frame's fields together.
_FrameView: Any = variant(Frame, {dict[str, float]: msgspec.Raw, TrainId: str})
_BatchView: Any = variant(FrameBatch, {Frame: _FrameView, TrainId: str})
_AcceptedWire: Any = variant(AcceptedFrame, {dict[str, Reading]: msgspec.Raw})
_views = msgspec.json.Decoder(_FrameView | _BatchView)
_encode = msgspec.json.Encoder().encode

# How accepted.v1 spells a good reading, around its value: `[` and `,"good"]`.
_OPEN, _CLOSE = _encode(Reading(0.0)).split(b"0.0")
_COLON_OPEN, _CLOSE_COMMA, _CLOSE_BRACE = b":" + _OPEN, _CLOSE + b",", _CLOSE + b"}"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""Channel names the byte rewrite can rely on (no `:`, `,`, quote or backslash)."""
_MAX_KNOWN_TRAINS = 65_536


class Express:
    def __init__(self, normaliser: Normaliser) -> None:
        self.normaliser = normaliser
        channels = [
            c for c in normaliser.catalogue.channels.values() if _PLAIN_NAME.fullmatch(c.name)
        ]
        self._trains: set[str] = set()
        """Train ids that passed the contract's `TrainId` check."""
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
        # The flat generic payload whose every reading has a catalogue name (canonical or alias):
        # GenericReading's metadata as `parse_generic` reads it, then one number per name.
        meta: list[tuple[Any, ...]] = [
            ("device_id", Annotated[str, msgspec.Meta(min_length=1)] | None, None),
            ("timestamp", float),
            ("timestamp_sent", str | None, None),
        ]
        excluded = {m[0] for m in meta} | {"kind"}
        names = [n for n in normaliser.catalogue.names() if n not in excluded]
        self._generic_view: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            msgspec.defstruct(
                "GenericView",
                [
                    *meta,
                    *((n, float | msgspec.UnsetType, msgspec.UNSET) for n in names),
                ],
                kw_only=True,
                forbid_unknown_fields=True,
                gc=False,
            )
        )

    def accept(
        self, envelope: RuleEnvelope, source: SourcePosition, now_ms: int
    ) -> list[Encoded] | None:
        """The encoded accepted frames of a payload, or None: take the general path (or
        `RejectError`, as the general path would)."""
        payload = envelope.payload
        # `find`, not `in`: on bytes, `in` first tries the operand as an int (a raised and
        # discarded TypeError, the cost of a whole search here).
        if payload.find(b'"kind"') < 0:
            return self._generic(envelope, source, now_ms)
        try:
            message = _views.decode(payload)
        except msgspec.DecodeError:
            return None
        train = message.train
        if train != envelope.principal or not (train in self._trains or self._known_train(train)):
            return None
        # The time bounds and the clock-skew tolerance as `Normaliser` has them: a frame out of
        # bounds or a live frame from a skewed clock takes the general path (which rejects or
        # counts it).
        normaliser = self.normaliser
        receipt = envelope.received_ms or now_ms
        low, high = normaliser.ts_min_ms, receipt + normaliser.ts_max_future_ms
        tolerance = normaliser.clock_skew_tolerance_ms
        check = self._check.decode
        out = []
        for frame in (message,) if type(message) is _FrameView else message.frames:
            ts_ms = frame.ts_ms
            if frame.train != train or not low <= ts_ms <= high:
                return None
            if not frame.backfill and abs(ts_ms - receipt) > tolerance:
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

    def _known_train(self, train: str) -> bool:
        try:
            msgspec.convert(train, TrainId)
        except msgspec.ValidationError:
            return False
        if len(self._trains) >= _MAX_KNOWN_TRAINS:  # bounded: start again
            self._trains.clear()
        self._trains.add(train)
        return True

    def _generic(
        self, envelope: RuleEnvelope, source: SourcePosition, now_ms: int
    ) -> list[Encoded] | None:
        """A generic sensor's flat payload decoded straight into the `GenericReading` that
        `codec.parse_generic` would make of it, then normalised as usual (which may reject)."""
        try:
            # A dict of the fields present: readings absent from the payload are UNSET, left out.
            document = msgspec.to_builtins(self._generic_view.decode(envelope.payload))
        except msgspec.DecodeError:
            return None
        reading = GenericReading(
            device_id=document.pop("device_id"),
            timestamp=document.pop("timestamp"),
            timestamp_sent=document.pop("timestamp_sent"),
            readings=document,
        )
        return [encoded(f) for f in self.normaliser.accept(reading, envelope, source, now_ms)]


def encoded(frame: AcceptedFrame) -> Encoded:
    """An accepted frame's bytes, or `RejectError` if Kinesis could not take them."""
    data = _encode(frame)
    if len(data) + len(frame.train) > MAX_RECORD_BYTES:
        raise RejectError(
            RejectReason.OVERSIZED, f"accepted frame {frame.seq} is {len(data)} bytes encoded"
        )
    return frame.train, frame.seq, data
