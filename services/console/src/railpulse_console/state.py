"""The in-memory read model: what the console knows of the fleet, built from the streams.

Feeds call `apply_*` with decoded events (in the event loop, never concurrently); pages read
snapshots. Everything is bounded: telemetry by the window, the alert feed by `max_alerts`.
Delivery is at least once and may replay (a restart re-reads from a recent position), so
anomalies are de-duplicated by `anomaly_id` and alarm transitions ordered by `version`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from railpulse_console.series import Series
from railpulse_console.views import (
    AlarmView,
    ChannelSeries,
    FeedItem,
    FleetView,
    FramesDelta,
    TrainSummary,
)
from railpulse_shared.catalogue import Catalogue
from railpulse_shared.contracts import AcceptedFrame, AlarmState, AlarmTransition, Anomaly, Severity

__all__ = ["FleetState", "Listener", "TrainState", "alarm_row", "now_ms"]

Listener = Callable[[str, FeedItem], None]
"""Called with (`anomaly` | `alarm`, item) as soon as one is applied (the SSE hub)."""

_SEVERITY_NAMES = {s.value: s.name.lower() for s in Severity}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TrainState:
    train: str
    series: Series
    last_ts_ms: int | None = None
    last_seq: int | None = None
    frames: int = 0
    anomalies: deque[FeedItem] = field(default_factory=deque)
    alarms: dict[str, AlarmView] = field(default_factory=dict)
    alarm_versions: dict[str, set[int]] = field(default_factory=dict)


class _Rate:
    """Events per second over the last `span_s` seconds of *their own* time (when ingest
    accepted a frame, when the detector emitted an anomaly), so the catch-up read at boot
    does not show as a burst. One-second buckets; arrivals may be out of order across shards."""

    def __init__(self, span_s: int = 10) -> None:
        self.span_s = span_s
        self._buckets: dict[int, int] = {}

    def add(self, at_ms: int, now: int) -> None:
        second, horizon = at_ms // 1000, now // 1000 - self.span_s
        if second <= horizon:
            return
        self._buckets[second] = self._buckets.get(second, 0) + 1
        if len(self._buckets) > 3 * self.span_s:
            self._buckets = {s: c for s, c in self._buckets.items() if s > horizon}

    def per_second(self, now: int) -> float:
        horizon = now // 1000 - self.span_s
        return sum(c for s, c in self._buckets.items() if s > horizon) / self.span_s


def _severity_name(value: int) -> str:
    return _SEVERITY_NAMES.get(value, str(value))


def anomaly_item(anomaly: Anomaly, seen_ms: int) -> FeedItem:
    return FeedItem(
        kind="anomaly",
        id=anomaly.anomaly_id,
        train=anomaly.train,
        at_ms=anomaly.ts_ms,
        severity=int(anomaly.severity),
        severity_name=_severity_name(anomaly.severity),
        category=anomaly.category.value,
        alert_key=anomaly.alert_key,
        message=anomaly.message,
        score=anomaly.score,
        threshold=anomaly.threshold,
        channels=list(anomaly.channels),
        detected_ms=anomaly.detected_ms,
        seen_ms=seen_ms,
    )


def alarm_item(transition: AlarmTransition, seen_ms: int) -> FeedItem:
    return FeedItem(
        kind="alarm",
        id=f"{transition.alarm_id}:{transition.version}",
        train=transition.train,
        at_ms=transition.at_ms,
        severity=int(transition.severity),
        severity_name=_severity_name(transition.severity),
        # Older notifiers named the category only as the alert key's `<category>:` prefix.
        category=(
            transition.category.value
            if transition.category is not None
            else transition.alert_key.split(":", 1)[0]
        ),
        alert_key=transition.alert_key,
        message=transition.reason,
        state=transition.state.value,
        seen_ms=seen_ms,
    )


def alarm_row(alarm: AlarmView) -> dict[str, object]:
    """An alarm for the train page, with its time to acknowledge and to clear."""
    return {
        "alarm_id": alarm.alarm_id,
        "alert_key": alarm.alert_key,
        "severity": alarm.severity,
        "severity_name": alarm.severity_name,
        "state": alarm.state,
        "raised_ms": alarm.raised_ms,
        "acknowledged_ms": alarm.acknowledged_ms,
        "cleared_ms": alarm.cleared_ms,
        "time_to_ack_ms": alarm.time_to_ack_ms,
        "time_to_clear_ms": alarm.time_to_clear_ms,
    }


class FleetState:
    def __init__(
        self,
        catalogue: Catalogue,
        *,
        window_s: int = 3600,
        offline_after_s: float = 15.0,
        max_alerts: int = 5000,
        fleet: Iterable[str] = (),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.catalogue = catalogue
        self.window_ms = window_s * 1000
        self.offline_after_ms = int(offline_after_s * 1000)
        self.clock = clock
        # A frame a second is the design rate; room for 4 Hz before the cap thins history.
        self._max_points = window_s * 4
        self.trains: dict[str, TrainState] = {}
        self.feed: deque[FeedItem] = deque(maxlen=max_alerts)
        self._anomaly_ids: set[str] = set()
        self._listeners: list[Listener] = []
        self.frame_rate = _Rate()
        self.anomaly_rate = _Rate(span_s=60)
        for train in fleet:
            self._train(train)

    # --- writes (from the feeds) -------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _train(self, train: str) -> TrainState:
        state = self.trains.get(train)
        if state is None:
            state = self.trains[train] = TrainState(train, Series(self._max_points))
        return state

    def apply_frame(self, frame: AcceptedFrame) -> None:
        now = self.clock()
        self.frame_rate.add(frame.ingested_ms or now, now)
        state = self._train(frame.train)
        state.frames += 1
        if state.last_ts_ms is None or frame.ts_ms >= state.last_ts_ms:
            state.last_ts_ms = frame.ts_ms
            state.last_seq = frame.seq
        if frame.ts_ms < now - self.window_ms:
            return  # a backfilled frame older than the window: counted, not plotted
        state.series.add(frame.ts_ms, {k: r.value for k, r in frame.readings.items()})
        if state.frames % 256 == 0:
            state.series.prune(now - self.window_ms)

    def apply_anomaly(self, anomaly: Anomaly) -> FeedItem | None:
        """Add an anomaly once (None when it is a replay)."""
        if anomaly.anomaly_id in self._anomaly_ids:
            return None
        now = self.clock()
        self.anomaly_rate.add(anomaly.detected_ms or now, now)
        item = anomaly_item(anomaly, now)
        if len(self.feed) == self.feed.maxlen:
            oldest = self.feed[0]
            if oldest.kind == "anomaly":
                self._anomaly_ids.discard(oldest.id)
        self._anomaly_ids.add(anomaly.anomaly_id)
        self.feed.append(item)
        state = self._train(anomaly.train)
        state.anomalies.append(item)
        while state.anomalies and state.anomalies[0].at_ms < now - self.window_ms:
            state.anomalies.popleft()
        self._emit("anomaly", item)
        return item

    def apply_alarm(self, transition: AlarmTransition) -> FeedItem | None:
        """Apply one lifecycle step; None when it is older than what is known (a replay)."""
        state = self._train(transition.train)
        alarm = state.alarms.get(transition.alarm_id)
        if alarm is None:
            alarm = state.alarms[transition.alarm_id] = AlarmView(
                alarm_id=transition.alarm_id,
                train=transition.train,
                alert_key=transition.alert_key,
                severity=int(transition.severity),
                severity_name=_severity_name(transition.severity),
                state=transition.state.value,
                anomaly_id=transition.anomaly_id,
            )
        versions = state.alarm_versions.setdefault(transition.alarm_id, set())
        if transition.version in versions:
            return None  # a replay
        versions.add(transition.version)
        # Each step's time is kept whatever the arrival order; the state is the newest version's.
        match transition.state:
            case AlarmState.RAISED:
                alarm.raised_ms = transition.at_ms
            case AlarmState.ESCALATED:
                alarm.escalated_ms = transition.at_ms
            case AlarmState.ACKNOWLEDGED:
                alarm.acknowledged_ms = transition.at_ms
            case AlarmState.CLEARED:
                alarm.cleared_ms = transition.at_ms
        if transition.version > alarm.version:
            alarm.version = transition.version
            alarm.state = transition.state.value
            alarm.severity = int(transition.severity)
            alarm.severity_name = _severity_name(transition.severity)
        item = alarm_item(transition, self.clock())
        self.feed.append(item)
        self._emit("alarm", item)
        return item

    def _emit(self, kind: str, item: FeedItem) -> None:
        for listener in self._listeners:
            listener(kind, item)

    # --- reads (from the pages) --------------------------------------------------------------

    def summary(self, state: TrainState, now: int) -> TrainSummary:
        age = None if state.last_ts_ms is None else max(0.0, (now - state.last_ts_ms) / 1000)
        open_alarms = {"critical": 0, "warning": 0, "info": 0}
        for alarm in state.alarms.values():
            if alarm.open:
                open_alarms[alarm.severity_name] = open_alarms.get(alarm.severity_name, 0) + 1
        hour_ago = now - 3_600_000
        return TrainSummary(
            train=state.train,
            online=age is not None and age * 1000 <= self.offline_after_ms,
            last_frame_ms=state.last_ts_ms,
            last_frame_age_s=None if age is None else round(age, 1),
            last_seq=state.last_seq,
            frames=state.frames,
            open_alarms=open_alarms,
            anomalies_1h=sum(1 for a in state.anomalies if a.at_ms >= hour_ago),
        )

    def fleet(self) -> FleetView:
        now = self.clock()
        trains = [self.summary(self.trains[name], now) for name in sorted(self.trains)]
        online = sum(1 for t in trains if t.online)
        return FleetView(now_ms=now, trains=trains, online=online, offline=len(trains) - online)

    def channels(
        self,
        train: str,
        max_points: int = 1200,
        older: Sequence[tuple[int, Mapping[str, float]]] = (),
    ) -> list[ChannelSeries]:
        """The train's channels over the window, with the catalogue's bands, catalogue order.

        `older` (from the warehouse) fills the window before the first point the streams gave.
        """
        state = self.trains.get(train)
        if state is None and not older:
            return []
        start = self.clock() - self.window_ms
        series = state.series if state is not None else Series(self._max_points)
        first = series.ts[0] if len(series) else None
        if older:
            merged = Series(self._max_points + len(older))
            for ts_ms, readings in older:
                if ts_ms >= start and (first is None or ts_ms < first):
                    merged.add(ts_ms, readings)
            recent_ts, recent = series.since(start - 1)
            for i, ts_ms in enumerate(recent_ts):
                merged.add(ts_ms, {k: x for k, v in recent.items() if (x := v[i]) is not None})
            series = merged
        ts, values = series.window(start, max_points)
        order = {name: i for i, name in enumerate(self.catalogue.channels)}
        result: list[ChannelSeries] = []
        for name in sorted(values, key=lambda n: (order.get(n, len(order)), n)):
            channel = self.catalogue.channels.get(name)
            result.append(
                ChannelSeries(
                    name=name,
                    unit=channel.unit if channel else "",
                    group=channel.group if channel else "uncatalogued",
                    operating=channel.operating if channel else None,
                    critical=channel.critical if channel else None,
                    ts=ts,
                    values=values[name],
                )
            )
        return result

    def frames_since(self, train: str, after_ms: int) -> FramesDelta:
        state = self.trains.get(train)
        if state is None:
            return FramesDelta(train=train, ts=[], values={})
        ts, values = state.series.since(after_ms)
        return FramesDelta(train=train, ts=ts, values=values)

    def alarms(self, train: str, older: Iterable[AlarmTransition] = ()) -> list[AlarmView]:
        """The train's alarms, newest first; `older` (from the warehouse) adds what the
        streams no longer hold, without overriding what they do."""
        state = self.trains.get(train)
        known = dict(state.alarms) if state is not None else {}
        history = FleetState(self.catalogue, clock=self.clock)
        for transition in older:
            if transition.alarm_id not in known:
                history.apply_alarm(transition)
        merged = {**(history.trains[train].alarms if train in history.trains else {}), **known}
        return sorted(merged.values(), key=lambda a: a.raised_ms or 0, reverse=True)

    def alerts(
        self,
        *,
        train: str | None = None,
        min_severity: int = 0,
        category: str | None = None,
        kind: str | None = None,
        limit: int = 200,
    ) -> list[FeedItem]:
        """The alert feed, newest first (by event time: a replay arrives in stream order), filtered."""
        out: list[FeedItem] = []
        ordered = sorted(enumerate(self.feed), key=lambda p: (p[1].at_ms, p[0]), reverse=True)
        for _, item in ordered:
            if train and item.train != train:
                continue
            if item.severity < min_severity:
                continue
            if category and item.category != category:
                continue
            if kind and item.kind != kind:
                continue
            out.append(item)
            if len(out) >= limit:
                break
        return out
