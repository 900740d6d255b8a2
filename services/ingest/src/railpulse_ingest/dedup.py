"""De-duplication by (train, epoch, seq) that tells a redelivery from a conflict, in stated memory.

A frame's identity is (train, epoch, seq): `epoch` is the edge agent's counter epoch, new with
each spool, so a counter that starts again (storage replaced, spool lost) is new data, not a
replay. Per (train, epoch) counter: the highest seq seen (`high`) and a ring of the last `window`
seqs, slot `seq % window` holding the content digest of the frame accepted with that seq (0: none),
so a check or a mark is O(1).

- seq > high: new (the slots between the old and new high are cleared as the ring advances).
- high - window < seq <= high: an empty slot is new (a late or out-of-order frame); the same
  digest is a duplicate (a QoS 1 redelivery, a KCL replay, a backfilled copy of a frame that went
  live): dropped and counted; another digest is a *conflict*, the same identity with other content
  (an older agent's counter that restarted without an epoch, a bug): the caller keeps it on the
  rejects queue with both digests, it is never dropped.
- seq <= high - window: older than the window; it cannot be judged, so it is let through and
  counted (`beyond_window`): losing a frame is worse than a rare duplicate.

The digest (`ContentDigest`) is 32 bits of Python's hash of the frame's content as accepted:
sensor time, position, speed and readings (canonical name → value: the catalogue's channels as a
row in a fixed order, then any other names sorted). Not the backfill flag, the receipt or ingest
times, nor the source position: they differ between deliveries of the same frame. Both lanes of
ingest and `recover` (which reads accepted frames back from `telemetry`) compute it from the same
values. Python salts the hash of strings per process, so a digest means something only inside
the process that made it, which is the only place digests are compared (a new shard owner
computes them again from `telemetry`). Two contents share a digest with probability 2^-32: such a
conflict passes for a duplicate.

Memory, the trade-off: a slot takes 4 bytes where a seen/not-seen bit took 1 bit, so for about
the same memory the window is shorter. Defaults: `window` = 8,192 seqs (2.3 h of 1 Hz train
frames; 8 s for generic sensors, whose seq is their time in ms), at most `max_counters` = 2,048
(train, epoch) counters (one Kinesis shard's 1,000 records/s carry about 1,000 trains at 1 Hz), the
least recently seen forgotten first: `max_counters * window * 4` = 64 MiB per shard process at
most, plus ~300 bytes of bookkeeping per counter. What must be caught lands well inside the
window: QoS 1 retransmissions (seconds), KCL replays after a failover (at most
`dedup_recovery_max_s`), backfill overlapping the live head. The state is in memory per shard:
after a failover the new owner rebuilds it from `telemetry` (see `recover`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec

from railpulse_shared.contracts import AcceptedFrame, Position

__all__ = ["ContentDigest", "Deduplicator"]

_UNSET = msgspec.UNSET


class ContentDigest:
    """Content digests of frames, with the catalogue's channels as a row in `names`' order (the
    order of the express lane's checked-readings struct, whose fields are `names`)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._known = frozenset(self.names)

    def of_row(
        self,
        ts_ms: int,
        row: tuple[Any, ...],
        position: Position | None,
        speed_kmh: float | None,
    ) -> int:
        """A frame whose readings are all catalogue channels: `row` holds their values in
        `names`' order, `msgspec.UNSET` where absent (a checked struct's `astuple`)."""
        return hash((ts_ms, position, speed_kmh, row)) & 0xFFFFFFFF or 1

    def of_values(
        self,
        ts_ms: int,
        values: dict[str, float],
        position: Position | None,
        speed_kmh: float | None,
    ) -> int:
        """Any frame: canonical name → value."""
        row = tuple(values.get(name, _UNSET) for name in self.names)
        key: tuple[Any, ...] = (ts_ms, position, speed_kmh, row)
        if not self._known.issuperset(values):
            key += (tuple(sorted((n, v) for n, v in values.items() if n not in self._known)),)
        return hash(key) & 0xFFFFFFFF or 1

    def of_accepted(self, frame: AcceptedFrame) -> int:
        values = {name: reading.value for name, reading in frame.readings.items()}
        return self.of_values(frame.ts_ms, values, frame.position, frame.speed_kmh)


class _Ring:
    __slots__ = ("digests", "high", "raw")

    def __init__(self, window: int, seq: int) -> None:
        self.raw = bytearray(window * 4)
        self.digests = memoryview(self.raw).cast("I")
        self.high = seq


class Deduplicator:
    def __init__(self, window: int = 8_192, max_counters: int = 2_048) -> None:
        if window < 8 or window & (window - 1):
            raise ValueError("window must be a power of two >= 8")
        if memoryview(bytearray(4)).cast("I").itemsize != 4:
            raise RuntimeError("a C unsigned int is not 4 bytes here")
        self.window = window
        self.max_counters = max_counters
        self.beyond_window = 0
        self.evicted = 0
        self._mask = window - 1
        self._rings: OrderedDict[tuple[str, int], _Ring] = OrderedDict()

    @property
    def memory_bound_bytes(self) -> int:
        return self.max_counters * self.window * 4

    def __len__(self) -> int:
        return len(self._rings)

    def previous(self, train: str, epoch: int, seq: int) -> int:
        """The digest of the frame marked as (train, epoch, seq), or 0: none within the window."""
        ring = self._rings.get((train, epoch))
        if ring is None or seq > ring.high:
            return 0
        if seq <= ring.high - self.window:
            self.beyond_window += 1
            return 0
        return ring.digests[seq & self._mask]

    def mark(self, train: str, epoch: int, seq: int, digest: int) -> None:
        """Remember a frame: call it once the frame is durably forwarded."""
        rings = self._rings
        key = (train, epoch)
        ring = rings.get(key)
        if ring is None:
            if len(rings) >= self.max_counters:
                rings.popitem(last=False)
                self.evicted += 1
            ring = rings[key] = _Ring(self.window, seq)
        else:
            rings.move_to_end(key)
            if seq > ring.high:
                if seq > ring.high + 1:  # not the next one: forget the seqs skipped
                    self._clear(ring, ring.high + 1, seq - 1)
                ring.high = seq
            elif seq <= ring.high - self.window:
                return
        ring.digests[seq & self._mask] = digest

    def _clear(self, ring: _Ring, start: int, end: int) -> None:
        """Empty the slots of [start, end] (they held seqs a window older)."""
        if end - start + 1 >= self.window:
            ring.raw[:] = bytes(len(ring.raw))
            return
        first, last = start & self._mask, end & self._mask
        if first <= last:
            ring.raw[first * 4 : (last + 1) * 4] = bytes((last - first + 1) * 4)
        else:  # wraps around the end of the ring
            ring.raw[first * 4 :] = bytes(len(ring.raw) - first * 4)
            ring.raw[: (last + 1) * 4] = bytes((last + 1) * 4)
