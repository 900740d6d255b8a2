"""Monthly AWS cost of railpulse against the reference design (seed 000), at list prices.

>>> from railpulse_deploy.cost import Workload, estimate
>>> estimate(Workload(trains=500)).ratio_to_reference  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from railpulse_deploy.cost._items import LineItem
from railpulse_deploy.cost._prices import Prices, load_prices
from railpulse_deploy.cost.railpulse import LEVERS, railpulse_items, railpulse_sizing
from railpulse_deploy.cost.reference import KDA_RETIREMENT_NOTE, reference_items
from railpulse_deploy.cost.workload import Assumptions, Workload

__all__ = [
    "KDA_RETIREMENT_NOTE",
    "LEVERS",
    "TARGET_RATIO",
    "Assumptions",
    "Estimate",
    "LineItem",
    "Prices",
    "Workload",
    "estimate",
    "load_prices",
]

TARGET_RATIO = 0.15


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    prices: Prices
    railpulse: list[LineItem]
    reference: list[LineItem]
    sizing: dict[str, int]

    @property
    def monthly_usd(self) -> float:
        return sum(i.monthly_usd for i in self.railpulse)

    @property
    def reference_monthly_usd(self) -> float:
        return sum(i.monthly_usd for i in self.reference)

    @property
    def ratio_to_reference(self) -> float:
        return self.monthly_usd / self.reference_monthly_usd

    @property
    def reference_without_deltas_usd(self) -> float:
        """The reference without the per-frame shadow deltas to the train (the issue's ~$4,500)."""
        return sum(i.monthly_usd for i in self.reference if "shadow delta" not in i.item)

    def summary(self) -> dict[str, Any]:
        """The flat figures (the keys `make bench-cost` prints)."""
        return {
            "trains": self.workload.trains,
            "hz": self.workload.hz,
            "channels": self.workload.channels,
            "monthly_usd": round(self.monthly_usd, 2),
            "reference_monthly_usd": round(self.reference_monthly_usd, 2),
            "ratio_to_reference": round(self.ratio_to_reference, 4),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "reference_without_shadow_deltas_usd": round(self.reference_without_deltas_usd, 2),
            "ratio_to_reference_without_shadow_deltas": round(
                self.monthly_usd / self.reference_without_deltas_usd, 4
            ),
            "frame_bytes": self.workload.frame_bytes,
            "shards": {k: v for k, v in self.sizing.items() if k != "frames_per_record"},
            "railpulse_items": [i.as_dict() for i in self.railpulse],
            "reference_items": [i.as_dict() for i in self.reference],
        }


def estimate(workload: Workload, prices: Prices | None = None) -> Estimate:
    p = prices or load_prices()
    return Estimate(
        workload=workload,
        prices=p,
        railpulse=railpulse_items(workload, p),
        reference=reference_items(workload, p),
        sizing=railpulse_sizing(workload),
    )
