"""Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
Jitter"): attempt n waits uniform(0, min(cap, base * 2**n)). Full jitter spreads a fleet that
lost coverage at the same moment (a tunnel, a broker restart) instead of reconnecting in waves."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay (before jitter)."""
        return min(self.cap, self.base * 2.0 ** min(self.attempt, 32))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
