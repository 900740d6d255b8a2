"""A priced line: what, how much of it, and what it costs a month."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LineItem", "units"]


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str
    monthly_usd: float

    def as_dict(self) -> dict[str, str | float]:
        return {
            "service": self.service,
            "item": self.item,
            "quantity": round(self.quantity, 3),
            "unit": self.unit,
            "monthly_usd": round(self.monthly_usd, 2),
        }


def units(size_bytes: float, unit_bytes: float) -> int:
    """Metering units for one message (AWS rounds every message up to whole units)."""
    return max(1, math.ceil(size_bytes / unit_bytes))
