"""The express lane: frames whose readings are all canonical and physically possible go from
payload bytes to `accepted.v1` bytes without a Python object per reading.

Most traffic is like that, and the general path (decode → normalise → encode) spends most of its
time building a `Reading` per channel and formatting every float again. Here:

- a train's frame is decoded with `readings` left raw, and those bytes are checked against a
  struct of the catalogue's channels, each constrained to its physical range: an unknown or
  aliased name, a reading outside the range or not a number fails the check (in C, no
  per-reading Python). A generic sensor's flat payload (seed 003) is decoded into the same
  struct with `GenericReading`'s metadata beside the readings, which are then encoded back;
- the readings object becomes accepted readings by two byte replacements, `:` → `:[` and
  `,` → `,"good"],` (and the closing brace): `{"speed":80.5,"odometer":12}` →
  `{"speed":[80.5,"good"],"odometer":[12,"good"]}`. That is exact because, once checked, the keys
  are canonical names (no `:` or `,`, nor an escape of one: that would not be a canonical name)
  and the values JSON numbers, so every `:` and `,` is structural; whitespace stays valid JSON.
  A name given twice stays twice, each value checked good, and every reader keeps the last one,
  as the general path does.

Each frame's content digest (see `dedup`) is taken from the checked readings struct as a row
(`astuple`), the row the general path builds from its dict of values.

Anything else (aliases, uncatalogued or invalid readings, a failed identity or time check, a live
clock off by more than the tolerance, more than `MAX_CHANNELS` name-value pairs in the text, a
decode error of any kind) returns None and takes the general path,
which decides, counts and explains it exactly as before: the express lane changes the speed,
never a decision (`tests/ingest/test_express.py`). A train's numbers keep its spelling (`12` stays
`12`, not `12.0`): the same float to every msgspec reader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from msgspec.structs import astuple

from railpulse_ingest._variant import variant
from railpulse_ingest.dedup import ContentDigest
from railpulse_ingest.errors import RejectError
from railpulse_ingest.forward import MAX_RECORD_BYTES
from railpulse_ingest.normalise import DEVICE_ID, Normaliser
from railpulse_shared.contracts import (
    MAX_CHANNELS,
    AcceptedFrame,
    AcceptedReadings,
    DeviceKind,
    Frame,
    FrameBatch,
    Reading,
    Readings,
    RejectReason,
    RuleEnvelope,
    SourcePosition,
)
from railpulse_shared.contracts.telemetry import TrainId

__all__ = ["Encoded", "Express", "encoded"]

Encoded = tuple[str, int, int, int, bytes]
"""(train, epoch, seq, content digest, accepted.v1 bytes) of one frame."""


# The device messages with `readings` left undecoded, and accepted.v1 with readings pre-encoded.
# Train ids are plain strings here, checked once per id (`_known`): msgspec checks a pattern by
# calling Python's `re`, which costs more than the rest of the frame's fields together.
_FrameView: Any = variant(Frame, {Readings: msgspec.Raw, TrainId: str})
_BatchView: Any = variant(FrameBatch, {Frame: _FrameView, TrainId: str})
_AcceptedWire: Any = variant(AcceptedFrame, {AcceptedReadings: msgspec.Raw})
_views = msgspec.json.Decoder(_FrameView | _BatchView)
_encode = msgspec.json.Encoder().encode

# How accepted.v1 spells a good reading, around its value: `[` and `,"good"]`.
_OPEN, _CLOSE = _encode(Reading(0.0)).split(b"0.0")
_COLON_OPEN, _CLOSE_COMMA, _CLOSE_BRACE = b":" + _OPEN, _CLOSE + b",", _CLOSE + b"}"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""Channel names the byte rewrite can rely on (no `:`, `,`, quote or backslash)."""
_GENERIC_META = ("device_id", "timestamp", "timestamp_sent")
_MAX_KNOWN_IDS = 65_536
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding device bytes may raise (invalid UTF-8, nesting too deep): the general path
explains it."""


class Express:
    def __init__(self, normaliser: Normaliser) -> None:
        self.normaliser = normaliser
        # Every catalogue channel, optional, within its physical range; nothing else. In the
        # catalogue's order, which frames follow (msgspec matches the next field first).
        good = [
            (
                c.name,
                Annotated[float, msgspec.Meta(ge=c.physical[0], le=c.physical[1])]
                | msgspec.UnsetType,
                msgspec.UNSET,
            )
            for c in normaliser.catalogue.channels.values()
            if _PLAIN_NAME.fullmatch(c.name)
        ]
        self.digest = ContentDigest([g[0] for g in good])
        """Content digests with a checked struct's fields as the row (see `dedup`)."""
        # Readings text no longer than this cannot hold more than MAX_CHANNELS pairs of these
        # names (each at least `"<shortest>":1,`): counting them is skipped.
        shortest = min((len(g[0]) for g in good), default=1)
        self._count_above = MAX_CHANNELS * (shortest + len('"":1,'))
        self._check = msgspec.json.Decoder(
            msgspec.defstruct("GoodReadings", good, forbid_unknown_fields=True, gc=False)
        )
        # GenericReading's metadata as `codec.parse_generic` reads it, beside the readings.
        meta: list[tuple[Any, ...]] = [
            ("device_id", Annotated[str, msgspec.Meta(min_length=1)] | None, None),
            ("timestamp", float),
            ("timestamp_sent", str | None, None),
        ]
        excluded = {*_GENERIC_META, "kind"}
        generic = [*meta, *(g for g in good if g[0] not in excluded)]
        # The readings after the metadata are the digest's row, unless a channel was excluded.
        self._generic_row = len(generic) == len(meta) + len(good)
        self._generic_check: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            msgspec.defstruct(
                "GoodGeneric", generic, kw_only=True, forbid_unknown_fields=True, gc=False
            )
        )
        # Ids that passed their (slow, regex) check once: the contract's `TrainId` for trains,
        # the normaliser's device id pattern for generic sensors.
        self._trains: set[str] = set()
        self._devices: set[str] = set()

    def accept(
        self, envelope: RuleEnvelope, source: SourcePosition, now_ms: int
    ) -> list[Encoded] | None:
        """The encoded accepted frames of a payload, or None: take the general path."""
        # `find`, not `in`: on bytes, `in` first tries the operand as an int (a raised and
        # discarded TypeError, the cost of a whole search here).
        if envelope.payload.find(b'"kind"') < 0:
            return self._generic(envelope, source, now_ms)
        try:
            message = _views.decode(envelope.payload)
        except _UNDECODABLE:
            return None
        train = message.train
        if train != envelope.principal or not _known(train, self._trains, _is_train_id):
            return None
        in_time = self._in_time(envelope, now_ms)
        check = self._check.decode
        of_row = self.digest.of_row
        out = []
        for frame in (message,) if type(message) is _FrameView else message.frames:
            if frame.train != train or not in_time(frame.ts_ms, frame.backfill):
                return None
            # Each checked pair has one `:` (names are canonical): more pairs than a frame may
            # have distinct channels go the general way, which counts names, not pairs.
            raw = bytes(frame.readings)
            if len(raw) > self._count_above and raw.count(b":") > MAX_CHANNELS:
                return None
            try:
                checked = check(raw)
            except _UNDECODABLE:
                return None
            data = _encode(
                _AcceptedWire(
                    train=train,
                    seq=frame.seq,
                    ts_ms=frame.ts_ms,
                    readings=_good(raw),
                    position=frame.position,
                    speed_kmh=frame.speed_kmh,
                    backfill=frame.backfill,
                    received_ms=envelope.received_ms,
                    ingested_ms=now_ms,
                    source=source,
                    epoch=frame.epoch,
                )
            )
            if len(data) + len(train) > MAX_RECORD_BYTES:
                return None
            digest = of_row(frame.ts_ms, astuple(checked), frame.position, frame.speed_kmh)
            out.append((train, frame.epoch, frame.seq, digest, data))
        return out

    def _generic(
        self, envelope: RuleEnvelope, source: SourcePosition, now_ms: int
    ) -> list[Encoded] | None:
        """A generic sensor's flat payload, checked as a train's readings are (its seq is its
        time in ms, as `Normaliser` makes it)."""
        try:
            view = self._generic_check.decode(envelope.payload)
        except _UNDECODABLE:
            return None
        device = envelope.principal
        if view.device_id not in (None, device) or not _known(device, self._devices, _is_device):
            return None
        exact_ms = view.timestamp * 1000
        if not math.isfinite(exact_ms):
            return None
        ts_ms = round(exact_ms)
        if not self._in_time(envelope, now_ms)(ts_ms, False):
            return None
        readings = msgspec.to_builtins(view)  # the fields present: UNSET ones are left out
        for name in _GENERIC_META:
            del readings[name]
        data = _encode(
            _AcceptedWire(
                train=device,
                seq=ts_ms,
                ts_ms=ts_ms,
                readings=_good(_encode(readings)),
                device_kind=DeviceKind.SENSOR,
                received_ms=envelope.received_ms,
                ingested_ms=now_ms,
                source=source,
            )
        )
        if self._generic_row:
            digest = self.digest.of_row(ts_ms, astuple(view)[len(_GENERIC_META) :], None, None)
        else:
            digest = self.digest.of_values(ts_ms, readings, None, None)
        return [(device, 0, ts_ms, digest, data)]

    def _in_time(self, envelope: RuleEnvelope, now_ms: int) -> Callable[[int, bool], bool]:
        """Whether a sensor time passes `Normaliser`'s time bound without a clock-skew count
        (a frame out of bounds or a live frame from a skewed clock takes the general path,
        which rejects or counts it)."""
        normaliser = self.normaliser
        receipt = envelope.received_ms or now_ms
        low, high = normaliser.ts_min_ms, receipt + normaliser.ts_max_future_ms
        tolerance = normaliser.clock_skew_tolerance_ms

        def in_time(ts_ms: int, backfill: bool) -> bool:
            return low <= ts_ms <= high and (backfill or abs(ts_ms - receipt) <= tolerance)

        return in_time


def _good(readings: bytes) -> msgspec.Raw:
    """A checked readings object (canonical names, numbers) as accepted.v1's good readings."""
    if readings.find(b":") < 0:  # `{}`
        return msgspec.Raw(readings)
    return msgspec.Raw(
        readings.replace(b":", _COLON_OPEN).replace(b",", _CLOSE_COMMA)[:-1] + _CLOSE_BRACE
    )


def _is_train_id(train: str) -> bool:
    try:
        msgspec.convert(train, TrainId)
    except msgspec.ValidationError:
        return False
    return True


def _is_device(device: str) -> bool:
    return DEVICE_ID.fullmatch(device) is not None


def _known(value: str, known: set[str], check: Callable[[str], bool]) -> bool:
    """`check(value)`, remembered in `known` when true (bounded: forgotten at once when full)."""
    if value in known:
        return True
    if not check(value):
        return False
    if len(known) >= _MAX_KNOWN_IDS:
        known.clear()
    known.add(value)
    return True


def encoded(frame: AcceptedFrame, digest: ContentDigest) -> Encoded:
    """An accepted frame's bytes, or `RejectError` if Kinesis could not take them."""
    data = _encode(frame)
    if len(data) + len(frame.train) > MAX_RECORD_BYTES:
        raise RejectError(
            RejectReason.OVERSIZED, f"accepted frame {frame.seq} is {len(data)} bytes encoded"
        )
    return frame.train, frame.epoch, frame.seq, digest.of_accepted(frame), data
