"""De-duplication by (train, seq) over a stated window with a stated memory bound.

Per train: the highest seq seen (`high`) and a ring bitmap of the last `window` sequence numbers
(bit `seq % window`), so a check or a mark is O(1) and a train costs `window / 8` bytes
(8 KiB at the default 65,536). At most `max_trains` trains are remembered; the least recently
seen is forgotten first. Memory bound: `max_trains * window / 8` bytes (32 MiB by default) plus
~200 bytes of bookkeeping per train.

- seq > high: new (the bits between the old and new high are cleared as the ring advances).
- high - window < seq <= high: a duplicate iff its bit is set (late or out-of-order frames pass).
- seq <= high - window: older than the window; it cannot be judged, so it is let through and
  counted (`beyond_window`): losing a frame is worse than a rare duplicate.

Trains send one frame per second or so, so the window spans hours of train frames; generic sensors
use their time in ms as seq, so for them it spans `window` ms (65 s by default).
QoS 1 redeliveries, backfill overlaps and KCL replays all land well inside it. The state is
in-memory per shard: after a failover the new owner rebuilds it from `telemetry` (see `handler`).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["Deduplicator"]


class _Ring:
    __slots__ = ("bits", "high")

    def __init__(self, size: int, seq: int) -> None:
        self.bits = bytearray(size)
        self.high = seq


class Deduplicator:
    def __init__(self, window: int = 65_536, max_trains: int = 4_096) -> None:
        if window < 8 or window & (window - 1):
            raise ValueError("window must be a power of two >= 8")
        self.window = window
        self.max_trains = max_trains
        self.beyond_window = 0
        self.evicted = 0
        self._mask = window - 1
        self._trains: OrderedDict[str, _Ring] = OrderedDict()

    @property
    def memory_bound_bytes(self) -> int:
        return self.max_trains * self.window // 8

    def __len__(self) -> int:
        return len(self._trains)

    def seen(self, train: str, seq: int) -> bool:
        """Whether (train, seq) was marked before (within the window)."""
        ring = self._trains.get(train)
        if ring is None or seq > ring.high:
            return False
        if seq <= ring.high - self.window:
            self.beyond_window += 1
            return False
        index = seq & self._mask
        return bool(ring.bits[index >> 3] & (1 << (index & 7)))

    def mark(self, train: str, seq: int) -> None:
        """Remember (train, seq): call it once the frame is durably forwarded."""
        trains = self._trains
        ring = trains.get(train)
        if ring is None:
            if len(trains) >= self.max_trains:
                trains.popitem(last=False)
                self.evicted += 1
            ring = trains[train] = _Ring(self.window >> 3, seq)
        else:
            trains.move_to_end(train)
            if seq > ring.high:
                if seq > ring.high + 1:  # not the next one: forget the seqs skipped
                    self._clear(ring, ring.high + 1, seq - 1)
                ring.high = seq
            elif seq <= ring.high - self.window:
                return
        index = seq & self._mask
        ring.bits[index >> 3] |= 1 << (index & 7)

    def _clear(self, ring: _Ring, start: int, end: int) -> None:
        """Clear the bits of [start, end] (they held seqs a window older)."""
        if end - start + 1 >= self.window:
            ring.bits[:] = bytes(len(ring.bits))
            return
        bits, mask = ring.bits, self._mask
        # Walk bit by bit to a byte boundary, then clear whole bytes (handling the ring's wrap).
        while start <= end and start & 7:
            index = start & mask
            bits[index >> 3] &= ~(1 << (index & 7)) & 0xFF
            start += 1
        while start + 7 <= end:
            first = (start & mask) >> 3
            count = min((end - start + 1) >> 3, len(bits) - first)
            bits[first : first + count] = bytes(count)
            start += count << 3
        while start <= end:
            index = start & mask
            bits[index >> 3] &= ~(1 << (index & 7)) & 0xFF
            start += 1
