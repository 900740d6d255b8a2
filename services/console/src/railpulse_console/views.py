"""What the console's JSON endpoints and server-sent events carry (msgspec Structs, encoded once).

These are the console's own read shapes, not contracts between services: the browser is their
only reader and ships with them, so they may change with the console.
"""

from __future__ import annotations

import msgspec

from railpulse_shared.contracts import Attribution

__all__ = [
    "AlarmView",
    "ChannelSeries",
    "ConsumerStatus",
    "FeedItem",
    "FleetView",
    "FramesDelta",
    "HealthView",
    "QueueStatus",
    "StreamStatus",
    "TrainDetail",
    "TrainSummary",
]


class _View(msgspec.Struct, kw_only=True):
    pass


class FeedItem(_View):
    """One line of the alert feed: an anomaly or an alarm transition."""

    kind: str
    """`anomaly` or `alarm`."""
    id: str
    train: str
    at_ms: int
    severity: int
    severity_name: str
    category: str
    alert_key: str
    message: str = ""
    score: float | None = None
    threshold: float | None = None
    channels: list[Attribution] = msgspec.field(default_factory=list)
    state: str | None = None
    """The alarm's state after the transition (alarm items only)."""
    detected_ms: int = 0
    """When the detector emitted it (anomalies), to measure emit-to-page latency."""
    seen_ms: int = 0
    """When the console read it from the stream."""


class AlarmView(_View):
    """An alarm's lifecycle as far as the console has seen it."""

    alarm_id: str
    train: str
    alert_key: str
    severity: int
    severity_name: str
    state: str
    raised_ms: int | None = None
    escalated_ms: int | None = None
    acknowledged_ms: int | None = None
    cleared_ms: int | None = None
    version: int = 0
    anomaly_id: str | None = None

    @property
    def open(self) -> bool:
        return self.state != "cleared"

    @property
    def time_to_ack_ms(self) -> int | None:
        if self.raised_ms is None or self.acknowledged_ms is None:
            return None
        return self.acknowledged_ms - self.raised_ms

    @property
    def time_to_clear_ms(self) -> int | None:
        if self.raised_ms is None or self.cleared_ms is None:
            return None
        return self.cleared_ms - self.raised_ms


class TrainSummary(_View):
    train: str
    online: bool
    last_frame_ms: int | None
    last_frame_age_s: float | None
    last_seq: int | None
    frames: int
    open_alarms: dict[str, int]
    """Open alarms by severity name (`critical`, `warning`, `info`)."""
    anomalies_1h: int


class FleetView(_View):
    now_ms: int
    trains: list[TrainSummary]
    online: int
    offline: int


class ChannelSeries(_View):
    name: str
    unit: str
    group: str
    operating: tuple[float, float] | None
    critical: tuple[float, float] | None
    ts: list[int]
    values: list[float | None]


class TrainDetail(_View):
    summary: TrainSummary
    window_s: int
    channels: list[ChannelSeries]
    anomalies: list[FeedItem]
    alarms: list[dict[str, object]]
    """AlarmView plus time to acknowledge and clear (computed)."""
    history: str
    """Where the older points came from: `stream` or `stream+warehouse`."""


class FramesDelta(_View):
    """New points of one train since the last push (train page, once a second)."""

    train: str
    ts: list[int]
    values: dict[str, list[float | None]]


class StreamStatus(_View):
    stream: str
    shards: int = 0
    records: int = 0
    decode_errors: int = 0
    millis_behind_latest: int | None = None
    """The largest MillisBehindLatest of the shards' last GetRecords."""
    newest_arrival_age_ms: int | None = None
    last_poll_ms: int | None = None
    error: str | None = None


class ConsumerStatus(_View):
    """A service's KCL application on one stream, from its lease table."""

    application: str
    stream: str
    leases: int = 0
    owners: int = 0
    lag_ms: int | None = None
    """Age of the oldest record after the checkpoints (0: caught up; None: unknown)."""
    note: str = ""
    error: str | None = None


class QueueStatus(_View):
    queue: str
    visible: int | None = None
    in_flight: int | None = None
    by_reason: dict[str, int] = msgspec.field(default_factory=dict)
    sampled: int = 0
    """How many messages the by-reason counts come from (a peek of a terminal queue)."""
    note: str = ""
    error: str | None = None


class HealthView(_View):
    now_ms: int
    frames_per_s: float
    anomalies_per_min: float
    streams: list[StreamStatus]
    consumers: list[ConsumerStatus]
    queues: list[QueueStatus]
    warehouse: str
