"""Wiring of one notifier task: clients, store, events, shadow, consumer, sweeper, metrics.

`run_service` is what `main` runs; tests and the benchmark run it too (two of them at once to
play two tasks on one queue), with an `Observer` to see each message done.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from aiobotocore.config import AioConfig

from railpulse_notifier.consume import SqsConsumer
from railpulse_notifier.events import EventPublisher
from railpulse_notifier.handlers import Notifier, Observer
from railpulse_notifier.lifecycle import Rules
from railpulse_notifier.settings import NotifierSettings
from railpulse_notifier.shadow import ShadowClient
from railpulse_notifier.store import AlarmStore
from railpulse_shared.aws import AwsClients
from railpulse_shared.metrics import Metrics, sink_from_url
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["NotifierService", "open_service", "run_service"]

logger = structlog.get_logger()


@dataclass(slots=True)
class NotifierService:
    settings: NotifierSettings
    notifier: Notifier
    consumer: SqsConsumer
    store: AlarmStore
    metrics: Metrics

    async def sweep_forever(self, shutdown: GracefulShutdown) -> None:
        last_scan = float("-inf")
        gate = asyncio.Semaphore(8)

        async def one(train: str) -> None:
            async with gate:
                try:
                    await self.notifier.sweep_train(train)
                except Exception as exc:
                    self.metrics.add("SweepFailures", 1)
                    logger.warning("sweep.failed", train=train, error=f"{type(exc).__name__}: {exc}")

        while not shutdown.requested:
            if time.monotonic() - last_scan >= self.settings.rescan_interval_s:
                try:
                    self.notifier.adopt(await self.store.open_trains())
                    last_scan = time.monotonic()
                except Exception as exc:
                    logger.warning("sweep.scan_failed", error=str(exc))
            await asyncio.gather(*(one(t) for t in self.notifier.watched()))
            await shutdown.wait_for(asyncio.sleep(self.settings.sweep_interval_s))

    async def flush_metrics_forever(self, shutdown: GracefulShutdown) -> None:
        while not shutdown.requested:
            await shutdown.wait_for(asyncio.sleep(self.settings.metrics_flush_s))
            self.metrics.flush()


async def _queue_url(sqs: Any, settings: NotifierSettings) -> str:
    if settings.queue_alerts_url:
        return settings.queue_alerts_url
    url: str = (await sqs.get_queue_url(QueueName=settings.queue_alerts))["QueueUrl"]
    return url


@asynccontextmanager
async def open_service(
    settings: NotifierSettings, observer: Observer | None = None
) -> AsyncIterator[NotifierService]:
    """Open the clients once and build the service around them."""
    clients = AwsClients(settings, max_pool_connections=50)
    # A fixed User-Agent: botocore otherwise rebuilds it from ~40 components on every request,
    # which was the largest single CPU cost of a notification in the profile.
    config = clients.config.merge(AioConfig(user_agent=f"railpulse-{settings.service}"))
    async with contextlib.AsyncExitStack() as stack:
        sqs, ddb, kinesis, iot = [
            await stack.enter_async_context(clients.create(name, config=config))
            for name in ("sqs", "dynamodb", "kinesis", "iot-data")
        ]
        metrics = Metrics(
            settings.metrics_namespace, {"service": settings.service},
            sink_from_url(settings.metrics_sink),
        )
        store = AlarmStore(ddb, settings.alarm_table)
        publisher = EventPublisher(kinesis, settings.stream_events)
        stack.push_async_callback(publisher.close)
        clear_ms = int(settings.clear_after_s * 1000)
        notifier = Notifier(
            store, publisher, ShadowClient(iot, max_attempts=settings.shadow_max_attempts), metrics,
            rules=Rules(clear_after_ms=clear_ms, touch_ms=int(clear_ms * settings.touch_fraction)),
            shadow_budget_bytes=settings.shadow_budget_bytes,
            store_max_attempts=settings.store_max_attempts,
            shadow_max_attempts=settings.shadow_max_attempts,
            inflight_grace_ms=settings.visibility_timeout_s * 1000,
            clock_skew_tolerance_ms=settings.clock_skew_tolerance_ms,
            observer=observer,
        )
        consumer = SqsConsumer(
            sqs, await _queue_url(sqs, settings), notifier.handle, metrics,
            batch_size=settings.batch_size, wait_time_s=settings.wait_time_s,
            visibility_timeout_s=settings.visibility_timeout_s, pollers=settings.pollers,
        )
        try:
            yield NotifierService(settings, notifier, consumer, store, metrics)
        finally:
            metrics.flush()


async def run_service(
    settings: NotifierSettings,
    shutdown: GracefulShutdown,
    observer: Observer | None = None,
) -> None:
    """Consume, sweep and flush metrics until shutdown; in-flight batches are drained."""
    async with open_service(settings, observer) as service:
        logger.info("notifier.started", queue=service.consumer.queue_url)
        sweeper = asyncio.create_task(service.sweep_forever(shutdown))
        flusher = asyncio.create_task(service.flush_metrics_forever(shutdown))
        await service.consumer.run(shutdown)
        for task in (sweeper, flusher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        logger.info("notifier.stopped")
