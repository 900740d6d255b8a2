"""The console's configuration, from the environment (`RAILPULSE_*`, `AWS_*`).

Poll intervals matter in AWS: a shard serves 5 GetRecords calls per second shared by every polling
consumer, so the console reads `events` twice a second and `telemetry` once, leaving the rest to
the services (see README: enhanced fan-out when that is not enough).
"""

from __future__ import annotations

import re

from railpulse_shared.config import CommonSettings

__all__ = ["ConsoleSettings", "expand_names"]

_WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
"""Bind addresses that are no host name a browser would send."""
_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<a>\d+)\.\.(?P=prefix)(?P<b>\d+)$")


class ConsoleSettings(CommonSettings, frozen=True, kw_only=True):
    service: str = "console"
    host: str = "127.0.0.1"
    """Loopback by default: put it behind an authenticating proxy before binding wider."""
    port: int = 8080
    allowed_hosts: str = ""
    """Host names (a `Host` header without its port) the console answers, comma-separated; any
    other gets 400, so a page on another site cannot reach it by DNS rebinding. Unset: 127.0.0.1,
    localhost and the bind host. `*.example.com` allows the subdomains."""
    pg_dsn: str | None = None
    """The warehouse (PostgreSQL locally, Redshift in AWS); history is optional without it."""
    warehouse_schema: str | None = None
    """Where the archiver's tables are; unset: the first schema that has them."""
    fleet: str = ""
    """Trains to list even before their first frame (`train-001..train-020,sensor-101`)."""
    window_s: int = 3600
    """How much of each train's telemetry the console keeps and plots."""
    telemetry_lookback_s: int = 900
    """Where the telemetry reader starts at boot (older points come from the warehouse)."""
    events_lookback_s: int = 3600
    events_poll_s: float = 0.5
    telemetry_poll_s: float = 1.0
    queues_poll_s: float = 5.0
    offline_after_s: float = 15.0
    """A train whose newest frame (sensor time) is older than this is shown offline."""
    dead_letter_queues: str = "rejects,rejects-dlq,alerts-dlq"
    kcl_consumers: str = (
        "railpulse-ingest=telemetry-raw,railpulse-detector=telemetry,"
        "railpulse-archiver-telemetry=telemetry,railpulse-archiver-events=events"
    )
    """The services' KCL applications (= lease tables) and their streams, for consumer lag."""
    lag_poll_s: float = 5.0
    max_alerts: int = 5000
    """Bound of the in-memory alert feed (newest kept)."""

    def fleet_names(self) -> tuple[str, ...]:
        return expand_names(self.fleet)

    def allowed_host_names(self) -> tuple[str, ...]:
        configured = tuple(n.strip() for n in self.allowed_hosts.split(",") if n.strip())
        if configured:
            return configured
        bound = () if self.host in _WILDCARD_ADDRESSES else (self.host,)
        return tuple(dict.fromkeys(("127.0.0.1", "localhost", *bound)))

    def dead_letter_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.dead_letter_queues.split(",") if n.strip())


def expand_names(spec: str) -> tuple[str, ...]:
    """`a-001..a-003,b` → (a-001, a-002, a-003, b), in order, without duplicates."""
    names: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        match = _RANGE.match(item)
        if match is None:
            if item:
                names.append(item)
            continue
        width = len(match["a"])
        start, end = int(match["a"]), int(match["b"])
        names.extend(f"{match['prefix']}{i:0{width}d}" for i in range(start, end + 1))
    return tuple(dict.fromkeys(names))
