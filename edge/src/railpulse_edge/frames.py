"""Frame encoding on the train: compact live frames and backfill batches that fill a byte budget.

Readings are rounded to 3 decimals (far below sensor noise), which keeps a full frame of the
catalogue's 33 train channels near 1 KB, well inside IoT Core's 5 KB metering unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from railpulse_shared.codec import encode
from railpulse_shared.contracts import MAX_BATCH_FRAMES, Frame, FrameBatch, Position

__all__ = ["METERING_UNIT", "build_frame", "mark_backfill", "pack_batch"]

METERING_UNIT = 5 * 1024
"""IoT Core meters messaging in 5 KB units."""
_BATCH_OVERHEAD = 64  # {"kind":"frames.v1","train":"...","frames":[...]} around the frames
_BACKFILL_FLAG = len(b',"backfill":true')

_frame_decoder = msgspec.json.Decoder(Frame)


def build_frame(
    train: str,
    seq: int,
    ts_ms: int,
    readings: dict[str, float],
    *,
    speed_kmh: float | None = None,
    position: tuple[float, float] | None = None,
    rounded: bool = False,
    epoch: int = 0,
) -> bytes:
    """A live frame's JSON. `rounded`: the caller already rounded the readings (the fleet does it
    for all trains at once with numpy). `epoch`: the spool's counter epoch."""
    if rounded:
        clean = {k: v for k, v in readings.items() if v == v}  # drop NaN (a dropped-out sensor)
    else:
        clean = {k: round(v, 3) for k, v in readings.items() if math.isfinite(v)}
    return encode(
        Frame(
            train=train,
            seq=seq,
            ts_ms=ts_ms,
            readings=clean,
            speed_kmh=round(speed_kmh, 2) if speed_kmh is not None else None,
            position=Position(round(position[0], 6), round(position[1], 6)) if position else None,
            epoch=epoch,
        )
    )


def mark_backfill(body: bytes) -> Frame:
    return msgspec.structs.replace(_frame_decoder.decode(body), backfill=True)


def pack_batch(train: str, bodies: Sequence[bytes], max_bytes: int) -> tuple[bytes, int]:
    """A FrameBatch of the longest prefix of `bodies` (oldest first) that fits `max_bytes` and
    the contract's `MAX_BATCH_FRAMES`, each frame marked as backfill. Returns (payload, number of
    frames packed); always packs at least one frame."""
    budget = max_bytes - _BATCH_OVERHEAD - len(train)
    n = 0
    used = 0
    for body in bodies[:MAX_BATCH_FRAMES]:
        cost = len(body) + _BACKFILL_FLAG + 1
        if n and used + cost > budget:
            break
        used += cost
        n += 1
    while True:
        payload = encode(FrameBatch(train=train, frames=[mark_backfill(b) for b in bodies[:n]]))
        if len(payload) <= max_bytes or n == 1:
            return payload, n
        n -= 1
