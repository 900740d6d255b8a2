"""De-aggregation of Kinesis Producer Library records, without a protobuf runtime.

The Java KCL normally de-aggregates, but a record can still arrive aggregated (a consumer path that
does not, a redrive, a KCL setting). Format: magic `F3 89 9A C2`, a protobuf `AggregatedRecord`
(1: partition_key_table, 2: explicit_hash_key_table, 3: records {1: pk index, 2: ehk index,
3: data, 4: tags}), then the MD5 of the protobuf bytes. A record that does not check out is not
aggregated (as the KCL decides), so it goes on as ordinary bytes and is judged there.
"""

from __future__ import annotations

import hashlib

__all__ = ["MAGIC", "deaggregate"]

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one protobuf message; only varint and bytes are expected."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Malformed
            out.append((number, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed
    if pos != len(buf):
        raise _Malformed
    return out


def deaggregate(data: bytes) -> list[tuple[str, bytes]] | None:
    """The (partition key, data) user records of an aggregated record; None if not aggregated."""
    if len(data) <= len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        return None
    body, digest = data[len(MAGIC) : -_DIGEST], data[-_DIGEST:]
    if hashlib.md5(body, usedforsecurity=False).digest() != digest:
        return None
    try:
        keys: list[str] = []
        records: list[tuple[int, bytes]] = []
        for number, value in _fields(body):
            if number == 1 and isinstance(value, bytes):
                keys.append(value.decode())
            elif number == 3 and isinstance(value, bytes):
                index, payload = 0, b""
                for inner, inner_value in _fields(value):
                    if inner == 1 and isinstance(inner_value, int):
                        index = inner_value
                    elif inner == 3 and isinstance(inner_value, bytes):
                        payload = inner_value
                records.append((index, payload))
        return [(keys[index] if index < len(keys) else "", payload) for index, payload in records]
    except (_Malformed, UnicodeDecodeError):
        return None
