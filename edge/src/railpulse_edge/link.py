"""One train's MQTT link: awsiotsdk (awscrt MQTT 3.1.1) over mutual TLS with its own certificate.

The agent owns reconnection: awscrt's built-in reconnect doubles its delay without jitter, so on
an interruption the link disconnects the awscrt connection and reconnects itself with capped
exponential backoff and full jitter. The session is persistent (`clean_session=False`, client id
= thing name): the broker keeps the shadow subscriptions and queues QoS 1 deltas while the train is
away. A publish is only attempted while connected; awscrt's own offline queue is never used, so
the spool stays the one place where unsent frames live.

awscrt calls back on its own threads; everything is handed to the asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from awscrt import mqtt
from awsiot import mqtt_connection_builder

from railpulse_edge.backoff import Backoff
from railpulse_edge.errors import LinkDownError

__all__ = ["LinkConfig", "MqttLink", "Publish"]

logger = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class LinkConfig:
    thing: str
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    keep_alive_s: int = 30
    publish_timeout_s: float = 15.0
    connect_timeout_s: float = 10.0
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 60.0


@dataclass(slots=True)
class Publish:
    """One QoS 1 publish: `done` resolves on PUBACK; `acked_at - sent_at` is the broker latency."""

    sent_at: float
    acked_at: float = 0.0
    done: asyncio.Future[Any] = field(init=False)

    def stamp(self, _future: Any) -> None:
        self.acked_at = time.monotonic()

    @property
    def latency_ms(self) -> float:
        return (self.acked_at - self.sent_at) * 1000.0


class MqttLink:
    def __init__(
        self,
        config: LinkConfig,
        *,
        on_connected: Callable[[bool], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.backoff = Backoff(config.reconnect_base_s, config.reconnect_cap_s)
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._hold_until = 0.0
        self._stopping: asyncio.Future[Any] | None = None
        self.connects = 0
        self.connection: Any = mqtt_connection_builder.mtls_from_path(
            endpoint=config.host,
            port=config.port,
            cert_filepath=str(config.cert_file),
            pri_key_filepath=str(config.key_file),
            ca_filepath=str(config.ca_file),
            client_id=config.client_id,
            clean_session=False,
            keep_alive_secs=config.keep_alive_s,
            # Failed or unacknowledged publishes fail after this; their frames go back to backfill.
            protocol_operation_timeout_ms=int(config.publish_timeout_s * 1000),
            # Only a fallback: the link disconnects on interruption and reconnects with jitter.
            reconnect_min_timeout_secs=int(config.reconnect_cap_s),
            reconnect_max_timeout_secs=int(config.reconnect_cap_s),
            on_connection_interrupted=self._crt_interrupted,
            enable_metrics_collection=False,
        )

    # -- awscrt threads ------------------------------------------------------------------------
    def _crt_interrupted(self, connection: Any, error: Any, **_: Any) -> None:
        self._loop.call_soon_threadsafe(self._interrupted, error)

    # -- loop thread ---------------------------------------------------------------------------
    def _interrupted(self, error: Any) -> None:
        if not self.connected.is_set():
            return
        logger.warning("link.interrupted", thing=self.config.thing, error=str(error))
        self._mark_down()
        # Stop awscrt's own (jitter-less) reconnect; run() reconnects with full jitter.
        with contextlib.suppress(Exception):
            self._stopping = asyncio.wrap_future(self.connection.disconnect())

    def _mark_down(self) -> None:
        self.connected.clear()
        self._lost.set()
        if self._on_disconnected is not None:
            self._on_disconnected()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the link up until `stop` is set, then disconnect."""
        try:
            while not stop.is_set():
                if self.connected.is_set():
                    await _first(stop.wait(), self._lost.wait())
                    if not stop.is_set():  # even the first retry after a loss is jittered
                        await _wait_timeout(stop, self.backoff.next_delay())
                    continue
                if self._stopping is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._stopping, 5)
                    self._stopping = None
                hold = self._hold_until - time.monotonic()
                if hold > 0:
                    await _wait_timeout(stop, hold)
                    continue
                if await self._connect_once():
                    continue
                delay = self.backoff.next_delay()
                logger.info("link.retry", thing=self.config.thing, delay_s=round(delay, 2),
                            attempt=self.backoff.attempt)
                await _wait_timeout(stop, delay)
        finally:
            await self.close()

    async def _connect_once(self) -> bool:
        try:
            result = await asyncio.wait_for(
                asyncio.wrap_future(self.connection.connect()), self.config.connect_timeout_s
            )
        except (TimeoutError, Exception) as exc:
            logger.info("link.connect_failed", thing=self.config.thing, error=repr(exc))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(self.connection.disconnect()), 5)
            return False
        if time.monotonic() < self._hold_until:  # an outage began while connecting
            await self._disconnect()
            return False
        self.backoff.reset()
        self.connects += 1
        self._lost.clear()
        self.connected.set()
        session = bool(result.get("session_present", False))
        logger.info("link.connected", thing=self.config.thing, session_present=session,
                    connects=self.connects)
        if self._on_connected is not None:
            self._on_connected(session)
        return True

    def publish(self, topic: str, payload: bytes) -> Publish:
        """QoS 1 publish; `done` completes on PUBACK. Raises LinkDownError when offline."""
        if not self.connected.is_set():
            raise LinkDownError(f"{self.config.thing}: link down")
        pub = Publish(time.monotonic())
        future, _ = self.connection.publish(topic, payload, mqtt.QoS.AT_LEAST_ONCE)
        future.add_done_callback(pub.stamp)  # on awscrt's thread: latency without loop delay
        pub.done = asyncio.wrap_future(future)
        return pub

    async def hold_down(self, seconds: float) -> None:
        """Simulate a loss of coverage (a tunnel): drop the link and stay offline for `seconds`."""
        self._hold_until = time.monotonic() + seconds
        if self.connected.is_set():
            logger.info("link.outage", thing=self.config.thing, seconds=seconds)
            self._mark_down()
            await self._disconnect()

    async def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(self.connection.disconnect()), 5)

    async def close(self) -> None:
        if self.connected.is_set():
            self.connected.clear()
            await self._disconnect()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _wait_timeout(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
