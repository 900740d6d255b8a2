"""The edge agent of one train: spool first, then publish; live frames and backfill side by side.

Flow of a frame: `record()` appends it to the spool (seq allocated there, durably), then, if the
link is up, publishes it at once as a live `Frame` (QoS 1). PUBACK removes it from the spool. A
frame that could not go live (link down, publish failed or timed out) stays spooled, and the
backfill lane sends it later, oldest first, in `FrameBatch` messages (frames marked
`backfill=true`) that fill `backfill_max_bytes`, at most `backfill_rate` messages a second and
`backfill_window` unacknowledged batches at a time (1 = strictly in order). Live frames never
wait for the backfill, so alerts stay fresh while a long outage drains.

Delivery is at least once: a frame published but not acknowledged before a crash is sent again
after the restart with the same seq (downstream de-duplicates on train + seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from railpulse_edge.errors import LinkDownError
from railpulse_edge.frames import METERING_UNIT, build_frame, pack_batch
from railpulse_edge.link import LinkConfig, MqttLink, Publish
from railpulse_edge.shadow import AlertCallback, ShadowSync
from railpulse_edge.sources import Sample, SensorSource
from railpulse_edge.spool import Eviction, Spool, SpoolEntry

__all__ = ["AgentConfig", "AgentCounters", "EdgeAgent"]

logger = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    thing: str
    topic: str
    backfill_max_bytes: int = 4 * METERING_UNIT
    backfill_rate: float = 5.0
    backfill_window: int = 1
    live_max_bytes: int = METERING_UNIT
    expire_every_s: float = 60.0
    report_every_s: float = 5.0
    evict_log_every_s: float = 30.0
    shadow: bool = True
    drain_timeout_s: float = 5.0


@dataclass(slots=True)
class AgentCounters:
    recorded: int = 0
    live_sent: int = 0
    live_acked: int = 0
    backfill_messages: int = 0
    backfill_frames_acked: int = 0
    publish_failed: int = 0
    live_oversize: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    keep_latencies: bool = False


class EdgeAgent:
    def __init__(
        self,
        config: AgentConfig,
        link_config: LinkConfig,
        spool: Spool,
        *,
        on_alert: AlertCallback | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.spool = spool
        self.counters = AgentCounters()
        self._clock = clock
        self._inflight: set[int] = set()
        self._backfill_inflight = 0
        self._wake = asyncio.Event()
        self._report_due = spool.stats().evicted > 0  # a crash may have kept it unreported
        self._unlogged_evictions = 0
        self._evict_logged_at = 0.0
        self._evicting = False  # an eviction episode lasts until the next PUBACK
        self.link = MqttLink(link_config, on_connected=self._connected, on_disconnected=self._wake.set)
        self.shadow = (
            ShadowSync(config.thing, self.link.connection, on_alert) if config.shadow else None
        )
        spool.on_evict = self._evicted
        spool.in_flight = lambda: self._inflight

    # -- events --------------------------------------------------------------------------------
    def _connected(self, session_present: bool) -> None:
        self._wake.set()
        if self.shadow is not None:
            self.shadow.on_connected()

    def _evicted(self, ev: Eviction) -> None:
        # A full spool evicts on every append: log the first eviction of an episode at once and
        # then a running total at most every `evict_log_every_s` (the shadow gets the same totals).
        self._report_due = True
        self._unlogged_evictions += ev.count
        now = time.monotonic()
        first_of_episode, self._evicting = not self._evicting, True
        if first_of_episode or now - self._evict_logged_at >= self.config.evict_log_every_s:
            stats = self.spool.stats()
            logger.warning(
                "spool.evicted", thing=self.config.thing, reason=ev.reason,
                count=self._unlogged_evictions, first_seq=ev.first_seq, last_seq=ev.last_seq,
                evicted_total=stats.evicted, pending=stats.pending,
            )
            self._unlogged_evictions = 0
            self._evict_logged_at = now

    def spool_report(self) -> dict[str, Any]:
        stats = self.spool.stats()
        gaps = self.spool.gaps()
        report: dict[str, Any] = {
            "evicted": stats.evicted,
            "evicted_size": stats.evicted_size,
            "evicted_age": stats.evicted_age,
            "pending": stats.pending,
        }
        if gaps:
            last = gaps[-1]
            report["last_gap"] = {"first_seq": last.first_seq, "last_seq": last.last_seq,
                                  "count": last.count, "reason": last.reason}
        return report

    # -- frames --------------------------------------------------------------------------------
    def record(self, sample: Sample, ts_ms: int | None = None) -> SpoolEntry:
        """Spool a sample as the next frame and publish it live if the link is up."""
        ts = ts_ms if ts_ms is not None else int(self._clock() * 1000)
        thing = self.config.thing
        entry = self.spool.append(
            ts,
            lambda seq: build_frame(
                thing, seq, ts, sample.readings, speed_kmh=sample.speed_kmh,
                position=sample.position, rounded=sample.rounded, epoch=self.spool.epoch,
            ),
        )
        self.counters.recorded += 1
        if self.link.connected.is_set():
            if len(entry.body) > self.config.live_max_bytes:
                self.counters.live_oversize += 1
            try:
                self._publish((entry.seq,), entry.body, live=True)
                self.counters.live_sent += 1
            except LinkDownError:
                pass  # went down a moment ago: the frame waits in the spool for the backfill
            except Exception as exc:  # an awscrt error: same, the spool keeps it
                self.counters.publish_failed += 1
                logger.warning("publish.error", thing=self.config.thing, error=repr(exc))
        return entry

    def _publish(self, seqs: tuple[int, ...], payload: bytes, *, live: bool) -> None:
        pub = self.link.publish(self.config.topic, payload)
        self._inflight.update(seqs)
        pub.done.add_done_callback(lambda f: self._published(f, seqs, live, pub))

    def _published(self, future: asyncio.Future[Any], seqs: tuple[int, ...], live: bool, pub: Publish) -> None:
        self._inflight.difference_update(seqs)
        if not live:
            self._backfill_inflight -= 1
        self._wake.set()
        if future.cancelled() or future.exception() is not None:
            self.counters.publish_failed += 1
            logger.info("publish.failed", thing=self.config.thing, frames=len(seqs), live=live,
                        error=repr(None if future.cancelled() else future.exception()))
            return
        if self.counters.keep_latencies:
            self.counters.latencies_ms.append(pub.latency_ms)
        try:
            self.spool.ack(seqs)
        except Exception:  # the frames stay spooled and are sent again: a duplicate, not a loss
            logger.exception("spool.ack_failed", thing=self.config.thing)
            return
        self._evicting = False
        if live:
            self.counters.live_acked += 1
        else:
            self.counters.backfill_frames_acked += len(seqs)

    # -- lanes ---------------------------------------------------------------------------------
    async def _backfill(self, stop: asyncio.Event) -> None:
        cfg = self.config
        interval = 1.0 / cfg.backfill_rate
        per_batch = max(1, cfg.backfill_max_bytes // 300)
        while not stop.is_set():
            self._wake.clear()
            if not self.link.connected.is_set() or self._backfill_inflight >= cfg.backfill_window:
                await _wait(stop, self._wake, 5.0)
                continue
            entries = self.spool.oldest(per_batch, exclude=self._inflight)
            if not entries:
                await _wait(stop, self._wake, 5.0)
                continue
            payload, n = pack_batch(cfg.thing, [e.body for e in entries], cfg.backfill_max_bytes)
            try:
                self._publish(tuple(e.seq for e in entries[:n]), payload, live=False)
            except LinkDownError:
                continue
            except Exception as exc:
                self.counters.publish_failed += 1
                logger.warning("publish.error", thing=cfg.thing, error=repr(exc))
                await _wait(stop, asyncio.Event(), 1.0)
                continue
            self._backfill_inflight += 1
            self.counters.backfill_messages += 1
            if self.counters.backfill_messages % 50 == 1:
                logger.info("backfill.progress", thing=cfg.thing, pending=len(self.spool),
                            oldest_seq=entries[0].seq, frames=n, bytes=len(payload))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        last_expire = last_report = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            now = time.monotonic()
            if now - last_expire >= self.config.expire_every_s:
                last_expire = now
                self.spool.expire()
            if now - last_report >= self.config.report_every_s and self._report_spool():
                last_report = now

    def _report_spool(self) -> bool:
        """Send the spool's eviction counts to the shadow if any are unreported and we are online."""
        if not (self._report_due and self.shadow is not None and self.link.connected.is_set()):
            return False
        self._report_due = False
        report = self.spool_report()
        logger.info("spool.reported", thing=self.config.thing, **report)
        self.shadow.report({"spool": report})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Run the link, the backfill lane and housekeeping until `stop`; then drain and close."""
        link_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.link.run(link_stop), name=f"{self.config.thing}-link"),
            asyncio.create_task(self._backfill(stop), name=f"{self.config.thing}-backfill"),
            asyncio.create_task(self._housekeeping(stop), name=f"{self.config.thing}-house"),
        ]
        try:
            await stop.wait()
            await self._drain()
        finally:
            link_stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        """Give in-flight publishes a moment to be acknowledged; the rest stay spooled."""
        self._report_spool()
        deadline = time.monotonic() + self.config.drain_timeout_s
        while self._inflight and self.link.connected.is_set() and time.monotonic() < deadline:
            self._wake.clear()
            await _wait(asyncio.Event(), self._wake, max(deadline - time.monotonic(), 0.01))

    async def run_source(self, source: SensorSource, rate_hz: float, stop: asyncio.Event) -> None:
        """Sample `source` at `rate_hz` (no drift: ticks are scheduled on a fixed grid)."""
        period = 1.0 / rate_hz
        next_tick = time.monotonic()
        while not stop.is_set():
            sample = source.read(self._clock())
            if sample is not None:
                self.record(sample)
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < -period:  # fell behind (suspended?): skip ticks rather than burst
                next_tick = time.monotonic()
                delay = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(delay, 0.0))


async def _wait(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
