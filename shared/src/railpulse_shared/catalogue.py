"""The channel catalogue: units and ranges of every channel, loaded once from `channels.toml`.

Ingest uses it to canonicalise names and units and to flag readings outside the physically
possible range; the detector uses it for hard limits (operating → warning, critical → critical).
"""

from __future__ import annotations

import enum
import itertools
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from railpulse_shared.contracts import Quality
from railpulse_shared.errors import ConfigError

__all__ = ["Band", "Breach", "Catalogue", "Channel", "Range", "load_catalogue"]

Range = tuple[float, float]


class Band(enum.IntEnum):
    """Where a value lies, from inside the operating range outwards."""

    OPERATING = 0
    WARNING = 1
    """Outside the operating range, inside the critical range."""
    CRITICAL = 2
    """Outside the critical range, inside the physically possible range."""
    IMPOSSIBLE = 3


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    unit: str
    physical: Range
    operating: Range
    critical: Range
    group: str = "other"
    description: str = ""
    aliases: dict[str, Range] = msgspec.field(default_factory=dict)
    """Other names for this channel → (scale, offset) into the canonical unit."""
    may_hold: bool = False
    """A constant value is normal here (a closed door, released brakes): never 'stuck'."""
    context: bool = False
    """The train's surroundings, not its equipment (the outside air): the forest judges the other
    channels in its light, but an unusual value of it alone is no fault of the train."""
    regulated: bool = False
    """Held at one level by a controller on every train in service, whatever the train does (the
    HVAC's saloon humidity): the detector compares it with the other trains' (`fleet_spread`)."""
    fleet_spread: float | None = None
    """For a regulated channel: the least spread assumed across healthy trains, in the channel's
    unit (its sensors' accuracy and drift)."""
    peers: str | None = None
    """The template this channel was numbered from (`bearing_temp` for `bearing_temp_5`)."""
    peer_spread: Range | None = None
    """How far (warning, critical) a reading may stray from its peers' median at one instant:
    a degrading bearing runs hotter than the other axle boxes long before an absolute limit."""

    def band(self, value: float) -> Band:
        low, high = self.operating
        if low <= value <= high:  # nearly every reading: no tuple of bands built for it
            return Band.OPERATING
        for band, (low, high) in (
            (Band.WARNING, self.critical),
            (Band.CRITICAL, self.physical),
        ):
            if low <= value <= high:
                return band
        return Band.IMPOSSIBLE

    def quality(self, value: float) -> Quality:
        low, high = self.physical
        return Quality.GOOD if low <= value <= high else Quality.INVALID


class Breach(msgspec.Struct, frozen=True):
    """A reading past a limit: which band it reached and on which side."""

    channel: str
    value: float
    band: Band
    direction: Literal["high", "low"]
    limit: float


class Catalogue:
    """Channels by canonical name, plus an alias index for canonicalisation."""

    def __init__(self, channels: list[Channel], version: int = 1) -> None:
        self.version = version
        self.channels: dict[str, Channel] = {c.name: c for c in channels}
        self.peer_groups: dict[str, tuple[Range, list[Channel]]] = {}
        """Templates with a `peer_spread` → (that spread, their channels in number order)."""
        for channel in channels:
            if channel.peers is not None and channel.peer_spread is not None:
                group = self.peer_groups.setdefault(channel.peers, (channel.peer_spread, []))
                group[1].append(channel)
        self._aliases: dict[str, tuple[Channel, float, float]] = {}
        for channel in channels:
            self._aliases[channel.name] = (channel, 1.0, 0.0)
            for alias, (scale, offset) in channel.aliases.items():
                self._aliases[alias] = (channel, scale, offset)

    def __contains__(self, name: object) -> bool:
        return name in self.channels

    def __len__(self) -> int:
        return len(self.channels)

    def names(self) -> list[str]:
        """Every name a device may use for a channel: canonical names and aliases."""
        return list(self._aliases)

    def canonical(self, name: str, value: float) -> tuple[Channel, float] | None:
        """The channel a device's name stands for and the value in its unit; None if unknown."""
        hit = self._aliases.get(name)
        if hit is None:
            return None
        channel, scale, offset = hit
        return channel, value * scale + offset

    def breach(self, name: str, value: float) -> Breach | None:
        """The limit a reading is past, if any (None inside the operating range or unknown)."""
        channel = self.channels.get(name)
        if channel is None:
            return None
        band = channel.band(value)
        if band is Band.OPERATING:
            return None
        low, high = {
            Band.WARNING: channel.operating,
            Band.CRITICAL: channel.critical,
            Band.IMPOSSIBLE: channel.physical,
        }[band]
        if value > high:
            return Breach(name, value, band, "high", high)
        return Breach(name, value, band, "low", low)


def _expand(raw: dict[str, Any]) -> list[Channel]:
    entries: list[dict[str, Any]] = []
    for stem, spec in raw.get("templates", {}).items():
        spec = dict(spec)
        count = spec.pop("count")
        entries.extend({**spec, "name": f"{stem}_{i}", "peers": stem} for i in range(1, count + 1))
    entries.extend({**spec, "name": name} for name, spec in raw.get("channels", {}).items())
    channels = msgspec.convert(entries, list[Channel])
    for c in channels:
        nested = (c.physical, c.critical, c.operating)
        for (outer_lo, outer_hi), (inner_lo, inner_hi) in itertools.pairwise(nested):
            if not (outer_lo <= inner_lo <= inner_hi <= outer_hi):
                raise ConfigError(
                    "RAILPULSE_CATALOGUE",
                    f"channel {c.name}: ranges must nest physical ⊇ critical ⊇ operating",
                )
        if c.regulated and not (c.fleet_spread is not None and c.fleet_spread > 0):
            raise ConfigError(
                "RAILPULSE_CATALOGUE", f"channel {c.name}: regulated needs fleet_spread > 0"
            )
        if c.peer_spread is not None and not 0 < c.peer_spread[0] <= c.peer_spread[1]:
            raise ConfigError(
                "RAILPULSE_CATALOGUE",
                f"channel {c.name}: peer_spread must be 0 < warning <= critical",
            )
    return channels


@cache
def load_catalogue(path: str | None = None) -> Catalogue:
    """The catalogue at `path`, or the one shipped with railpulse_shared (cached per path)."""
    try:
        if path is None:
            text = resources.files("railpulse_shared").joinpath("channels.toml").read_text()
        else:
            text = Path(path).read_text()
        raw = tomllib.loads(text)
        return Catalogue(_expand(raw), version=int(raw.get("version", 1)))
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError, KeyError) as exc:
        raise ConfigError("RAILPULSE_CATALOGUE", f"cannot load channel catalogue: {exc}") from exc
