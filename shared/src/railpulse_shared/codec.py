"""One decoder and one encoder per union, built once at import and reused (msgspec's fast path).

Every producer and consumer goes through these functions, so the wire format lives here once.
Decoding errors become `ContractError` (with msgspec's path) or `MalformedPayloadError`.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

import msgspec

from railpulse_shared.contracts import (
    CHANNEL_NAME_CHARS,
    CHANNEL_NAME_PATTERN,
    MAX_CHANNEL_NAME,
    MAX_CHANNELS,
    AnyEvent,
    DeviceMessage,
    GenericReading,
    RuleEnvelope,
    Wire,
)
from railpulse_shared.errors import ContractError, MalformedPayloadError

__all__ = [
    "decode_device_message",
    "decode_envelope",
    "decode_event",
    "decode_wire",
    "encode",
    "malformed_detail",
    "parse_generic",
]

_T = TypeVar("_T", bound=Wire)

_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(AnyEvent)
_device_decoder = msgspec.json.Decoder(DeviceMessage)
_envelope_decoder = msgspec.json.Decoder(RuleEnvelope)
_wire_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

# Keys of the flat generic payload that are metadata, not readings.
_GENERIC_META = frozenset({"device_id", "timestamp", "timestamp_sent", "kind"})
_CHANNEL_NAME = re.compile(CHANNEL_NAME_PATTERN)


def malformed_detail(exc: Exception) -> str | None:
    """Why bytes are not a JSON document, for the decoding errors that are not msgspec's
    `DecodeError` (invalid UTF-8 in a string, nesting deeper than the decoder recurses), or None
    for any other error."""
    if isinstance(exc, UnicodeDecodeError):
        around = bytes(exc.object[max(0, exc.start - 24) : exc.end + 8])
        return f"invalid UTF-8 in a string ({exc.reason}): {around!r}"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return None


def encode(value: msgspec.Struct) -> bytes:
    """JSON bytes of any event or wire struct."""
    return _encoder.encode(value)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ContractError(str(exc), _path_of(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise MalformedPayloadError(str(exc)) from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise MalformedPayloadError(malformed_detail(exc) or str(exc)) from exc


def _path_of(message: str) -> str:
    # msgspec ends validation messages with "- at `$.path`", or "- at `key` in `$.path`" when a
    # dict key is at fault.
    marker = "- at `"
    at = message.rfind(marker)
    if at < 0 or not message.endswith("`"):
        return "$"
    path = message[at + len(marker) : -1]
    return f"{path.removeprefix('key` in `')} (a key)" if path.startswith("key` in `") else path


def decode_event(data: bytes) -> AnyEvent:
    """Any tagged event, dispatched on its `kind`."""
    result: AnyEvent = _decode(_event_decoder, data)
    return result


def decode_device_message(data: bytes) -> DeviceMessage:
    """A frame or frame batch as a train publishes it."""
    result: DeviceMessage = _decode(_device_decoder, data)
    return result


def decode_envelope(data: bytes) -> RuleEnvelope:
    """A record of Kinesis `telemetry-raw` as the IoT topic rule writes it."""
    result: RuleEnvelope = _decode(_envelope_decoder, data)
    return result


def decode_wire(data: bytes, type_: type[_T]) -> _T:
    """Any untagged wire shape (shadow documents, ...), with a cached decoder per type."""
    decoder = _wire_decoders.get(type_)
    if decoder is None:
        decoder = _wire_decoders[type_] = msgspec.json.Decoder(type_)
    result: _T = _decode(decoder, data)
    return result


def parse_generic(document: dict[str, Any]) -> GenericReading:
    """The flat generic sensor payload: metadata keys plus any number of numeric readings.

    Booleans are not numbers here; NaN and infinities are rejected; a non-numeric extra field is
    a schema violation (nothing is dropped silently); names and their number are bounded as a
    frame's readings are (`ChannelName`, `MAX_CHANNELS`).
    """
    timestamp = document.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ContractError("timestamp must be a number (epoch seconds)", "$.timestamp")
    device_id = document.get("device_id")
    if device_id is not None and (not isinstance(device_id, str) or not device_id):
        raise ContractError("device_id must be a non-empty string", "$.device_id")
    sent = document.get("timestamp_sent")
    if sent is not None and not isinstance(sent, str):
        raise ContractError("timestamp_sent must be a string", "$.timestamp_sent")
    readings: dict[str, float] = {}
    for key, value in document.items():
        if key in _GENERIC_META:
            continue
        if not (len(key) <= MAX_CHANNEL_NAME and _CHANNEL_NAME.match(key)):
            raise ContractError(
                f"reading name {key[:MAX_CHANNEL_NAME]!r} is not 1-{MAX_CHANNEL_NAME} of "
                f"[{CHANNEL_NAME_CHARS}]",
                "$ (a key)",
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ContractError(f"reading {key!r} must be a number", f"$.{key}")
        if not math.isfinite(value):
            raise ContractError(f"reading {key!r} must be finite", f"$.{key}")
        readings[key] = float(value)
    if len(readings) > MAX_CHANNELS:
        raise ContractError(f"{len(readings)} readings, at most {MAX_CHANNELS}", "$")
    return GenericReading(
        device_id=device_id, timestamp=float(timestamp), readings=readings, timestamp_sent=sent
    )
