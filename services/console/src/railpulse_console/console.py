"""The console's parts and their lifecycle: read model, hub, warehouse, stream and queue readers."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack

import structlog

from railpulse_console.feeds import ShardReader
from railpulse_console.history import Warehouse
from railpulse_console.hub import Hub
from railpulse_console.lag import ConsumerLag, parse_consumers
from railpulse_console.queues import QueueWatcher
from railpulse_console.settings import ConsoleSettings
from railpulse_console.state import FleetState, now_ms
from railpulse_console.views import HealthView
from railpulse_shared.aws import AwsClients
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, AlarmTransition, Anomaly, AnyEvent

__all__ = ["Console"]

logger = structlog.get_logger()


class Console:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.state = FleetState(
            load_catalogue(settings.catalogue),
            window_s=settings.window_s,
            offline_after_s=settings.offline_after_s,
            max_alerts=settings.max_alerts,
            fleet=settings.fleet_names(),
        )
        self.hub = Hub()
        self.state.subscribe(self.hub.publish)
        self.warehouse = Warehouse(settings.pg_dsn, schema=settings.warehouse_schema)
        self.readers: list[ShardReader] = []
        self.queues: QueueWatcher | None = None
        self.lag: ConsumerLag | None = None
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._exit = AsyncExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        """Safe from a signal handler: ends the feeds and the open event streams."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop.set)
        else:
            self.stop.set()

    def deliver(self, event: AnyEvent) -> None:
        """Route a decoded stream event into the read model (other kinds are not shown)."""
        match event:
            case AcceptedFrame():
                self.state.apply_frame(event)
            case Anomaly():
                self.state.apply_anomaly(event)
            case AlarmTransition():
                self.state.apply_alarm(event)
            case _:
                pass

    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        clients = AwsClients(s, max_pool_connections=8)
        kinesis = await self._exit.enter_async_context(clients.create("kinesis"))
        sqs = await self._exit.enter_async_context(clients.create("sqs"))
        dynamodb = await self._exit.enter_async_context(clients.create("dynamodb"))
        self.readers = [
            ShardReader(
                kinesis,
                s.stream_events,
                self.deliver,
                lookback_s=s.events_lookback_s,
                poll_s=s.events_poll_s,
            ),
            ShardReader(
                kinesis,
                s.stream_telemetry,
                self.deliver,
                lookback_s=s.telemetry_lookback_s,
                poll_s=s.telemetry_poll_s,
            ),
        ]
        self.queues = QueueWatcher(sqs, s.dead_letter_names(), poll_s=s.queues_poll_s)
        self.lag = ConsumerLag(
            dynamodb, kinesis, parse_consumers(s.kcl_consumers), poll_s=s.lag_poll_s
        )
        self._tasks.append(asyncio.create_task(self.lag.run(self.stop), name="lag"))
        for reader in self.readers:
            self._tasks.append(asyncio.create_task(reader.run(self.stop), name=reader.stream))
        self._tasks.append(asyncio.create_task(self.queues.run(self.stop), name="queues"))
        logger.info("console_started", streams=[r.stream for r in self.readers])

    async def close(self) -> None:
        self.stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._exit.aclose()

    def health(self) -> HealthView:
        now = now_ms()
        return HealthView(
            now_ms=now,
            frames_per_s=round(self.state.frame_rate.per_second(now), 2),
            anomalies_per_min=round(self.state.anomaly_rate.per_second(now) * 60, 2),
            streams=[r.status for r in self.readers],
            consumers=list(self.lag.status.values()) if self.lag else [],
            queues=list(self.queues.status.values()) if self.queues else [],
            warehouse=self.warehouse.status,
        )
