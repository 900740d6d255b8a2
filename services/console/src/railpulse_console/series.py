"""A train's recent telemetry as compact columns: one timestamp array and one array per channel.

Arrays of C doubles, not lists of dicts: a fleet of 20 trains x 40 channels x an hour at 1 Hz is
~3 M values, ~23 MB this way and ten times that as Python objects. A channel missing from a frame
is NaN there (the plot shows a gap).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping

__all__ = ["Series"]


class Series:
    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.ts: array[int] = array("q")
        self.cols: dict[str, array[float]] = {}

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, ts_ms: int, readings: Mapping[str, float]) -> None:
        """Append a frame (in time order as a rule; an older one is inserted at its place)."""
        n = len(self.ts)
        at = n if n == 0 or ts_ms >= self.ts[-1] else bisect_right(self.ts, ts_ms)
        for name in readings.keys() - self.cols.keys():
            self.cols[name] = array("d", [math.nan] * n)
        if at == n:
            self.ts.append(ts_ms)
            for name, col in self.cols.items():
                col.append(readings.get(name, math.nan))
        else:
            self.ts.insert(at, ts_ms)
            for name, col in self.cols.items():
                col.insert(at, readings.get(name, math.nan))
        if len(self.ts) > self.max_points * 1.1:
            self._drop(len(self.ts) - self.max_points)

    def prune(self, before_ms: int) -> None:
        """Forget points older than `before_ms`."""
        cut = bisect_left(self.ts, before_ms)
        if cut:
            self._drop(cut)

    def _drop(self, count: int) -> None:
        # Deleting from the front is O(n): done in batches (10 % over the cap), not per frame.
        del self.ts[:count]
        for col in self.cols.values():
            del col[:count]

    def since(self, after_ms: int) -> tuple[list[int], dict[str, list[float | None]]]:
        """Points strictly after `after_ms`, NaN as None (JSON null)."""
        start = bisect_right(self.ts, after_ms)
        return self._slice(start, len(self.ts), 1)

    def window(
        self, from_ms: int, max_points: int
    ) -> tuple[list[int], dict[str, list[float | None]]]:
        """Points from `from_ms`, thinned by a stride to at most about `max_points`."""
        start = bisect_left(self.ts, from_ms)
        count = len(self.ts) - start
        stride = max(1, math.ceil(count / max_points)) if max_points > 0 else 1
        return self._slice(start, len(self.ts), stride)

    def _slice(
        self, start: int, end: int, stride: int
    ) -> tuple[list[int], dict[str, list[float | None]]]:
        idx = list(range(end - 1, start - 1, -stride))[::-1]  # keep the newest point
        ts = [self.ts[i] for i in idx]
        values = {
            name: [None if math.isnan(v) else v for v in (col[i] for i in idx)]
            for name, col in self.cols.items()
        }
        return ts, values
