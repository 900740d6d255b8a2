"""Load the newest dated price list (`prices_YYYY-MM.toml`) shipped next to this module."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["Prices", "load_prices"]


@dataclass(frozen=True)
class Prices:
    date: str
    region: str
    hours_per_month: float
    table: dict[str, dict[str, Any]]

    def __call__(self, section: str, key: str) -> float:
        """One price; a missing key is a KeyError naming it (never a silent zero)."""
        try:
            return float(self.table[section][key])
        except KeyError:
            raise KeyError(f"price {section}.{key} missing from prices_{self.date}.toml") from None


def load_prices(date: str | None = None) -> Prices:
    """The price list for `date` (YYYY-MM), or the newest one when `date` is None."""
    files = sorted(
        f.name
        for f in resources.files(__package__).iterdir()
        if f.name.startswith("prices_") and f.name.endswith(".toml")
    )
    if not files:
        raise FileNotFoundError("no prices_*.toml next to railpulse_deploy.cost")
    name = files[-1] if date is None else f"prices_{date}.toml"
    if name not in files:
        raise FileNotFoundError(f"{name} not found; have {', '.join(files)}")
    data = tomllib.loads(resources.files(__package__).joinpath(name).read_text())
    meta = data.pop("meta")
    return Prices(
        date=str(meta["date"]),
        region=str(meta["region"]),
        hours_per_month=float(meta["hours_per_month"]),
        table=data,
    )
