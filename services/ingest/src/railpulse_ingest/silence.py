"""Which trains have gone silent: per-train last-heard times, bounded, and the gauge of trains
not heard from for `silent_after_ms` among those heard within `remember_ms`.

A train is heard when one of its frames arrives (the Kinesis arrival time of its record, so a
consumer catching up does not mistake old frames for fresh ones). Memory is bounded twice:
trains not heard for `remember_ms` are forgotten, and beyond `max_trains` the least recently
heard is. Each ingest process knows the trains of its own shards (the partition key is the
train), so the gauge is per shard; the alarm takes its maximum.
"""

from __future__ import annotations

__all__ = ["SilenceWatch"]


class SilenceWatch:
    def __init__(self, silent_after_ms: int, remember_ms: int, max_trains: int) -> None:
        self.silent_after_ms = silent_after_ms
        self.remember_ms = remember_ms
        self.max_trains = max_trains
        self._last: dict[str, int] = {}
        """train -> last heard (epoch ms), least recently updated first."""

    def heard(self, train: str, at_ms: int) -> None:
        last = self._last.pop(train, at_ms)
        self._last[train] = max(last, at_ms)
        if len(self._last) > self.max_trains:
            del self._last[next(iter(self._last))]

    def silent(self, now_ms: int) -> list[str]:
        """Trains heard within `remember_ms` but not for `silent_after_ms`, least recently heard
        first; forgets older ones."""
        forget = [t for t, at in self._last.items() if now_ms - at > self.remember_ms]
        for train in forget:
            del self._last[train]
        quiet = [(at, t) for t, at in self._last.items() if now_ms - at >= self.silent_after_ms]
        return [t for _, t in sorted(quiet)]

    def __len__(self) -> int:
        return len(self._last)
