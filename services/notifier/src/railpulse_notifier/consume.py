"""SQS `alerts` consumer: long polling, concurrent batches, per-message outcomes.

Each poller receives up to 10 messages, hands them to `process_batch` (all concurrently: the
notifier's train mailboxes keep per-train order), and keeps them invisible while that runs.
Afterwards only the messages that succeeded are deleted. A transient failure is made visible
again after a backoff that grows with its receive count; a poison message is made visible
almost at once, so it reaches the dead-letter queue after the queue's maxReceiveCount without
holding anything else up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_shared import metric_names as mn
from railpulse_shared.batch import BatchResult, FailureKind, StreamRecord, process_batch
from railpulse_shared.metrics import Metrics
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["Handler", "SqsConsumer"]

logger = structlog.get_logger()

Handler = Callable[[StreamRecord], Awaitable[object]]
"""Processes one message (as a StreamRecord: body in `data`, MessageId in `sequence_number`)."""

_POISON_RETRY_S = 1
_MAX_BACKOFF_S = 300


class SqsConsumer:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        metrics: Metrics,
        *,
        batch_size: int = 10,
        wait_time_s: int = 20,
        visibility_timeout_s: int = 30,
        pollers: int = 2,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.metrics = metrics
        self.batch_size = min(batch_size, 10)
        self.wait_time_s = wait_time_s
        self.visibility_timeout_s = visibility_timeout_s
        self.pollers = pollers

    async def run(self, shutdown: GracefulShutdown) -> None:
        """Poll until shutdown is requested, then let in-flight batches finish."""
        loops = [asyncio.create_task(self._poll(shutdown)) for _ in range(self.pollers)]
        await shutdown.event.wait()
        await shutdown.drain(asyncio.gather(*loops, return_exceptions=True))
        for task in loops:
            task.cancel()

    async def _poll(self, shutdown: GracefulShutdown) -> None:
        while not shutdown.requested:
            try:
                messages = await shutdown.wait_for(self.receive())
            except (ClientError, BotoCoreError) as err:
                logger.warning("sqs.receive_failed", error=str(err))
                await asyncio.sleep(1.0)
                continue
            if not messages:
                continue
            try:
                # Shielded: a shutdown drains this batch instead of abandoning it half done.
                await asyncio.shield(self.process(messages))
            except (ClientError, BotoCoreError, OSError) as err:
                # Undeleted messages come back after their visibility timeout: nothing is lost.
                logger.warning("sqs.batch_failed", error=str(err), count=len(messages))

    async def receive(self) -> list[dict[str, Any]]:
        resp = await self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_s,
            VisibilityTimeout=self.visibility_timeout_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages: list[dict[str, Any]] = resp.get("Messages", [])
        return messages

    async def process(self, messages: list[dict[str, Any]]) -> BatchResult[object]:
        received_ms = int(time.time() * 1000)
        by_id = {m["MessageId"]: m for m in messages}
        records = [
            StreamRecord(data=m["Body"].encode(), sequence_number=m["MessageId"],
                         arrival_ms=received_ms, stream=self.queue_url)
            for m in messages
        ]
        keeper = asyncio.create_task(self._keep_invisible(messages))
        try:
            result = await process_batch(records, self.handler, concurrency=len(records))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self._delete([by_id[r.sequence_number] for r, _ in result.succeeded])
        for failure in result.failed:
            message = by_id[failure.seq]
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if failure.kind is FailureKind.POISON:
                delay = _POISON_RETRY_S
            else:
                delay = min(_MAX_BACKOFF_S, 2**count)
            logger.warning("message.failed", message_id=failure.seq, kind=failure.kind.value,
                           error=failure.error, receive_count=count, retry_in_s=delay)
            await self._change_visibility([message], delay)
        # Received and poison with every batch, zeros included: the error-rate alarm's numbers
        # (railpulse_shared.metric_names.ERROR_RATE).
        self.metrics.add(mn.MESSAGES_RECEIVED, len(messages))
        self.metrics.add("MessagesProcessed", len(result.succeeded))
        self.metrics.add(mn.MESSAGES_POISON, len(result.poison))
        if result.transient:
            self.metrics.add("MessagesTransient", len(result.transient))
        return result

    async def _keep_invisible(self, messages: list[dict[str, Any]]) -> None:
        while True:
            await asyncio.sleep(self.visibility_timeout_s / 3)
            await self._change_visibility(messages, self.visibility_timeout_s)

    async def _change_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
            for i, m in enumerate(messages)
        ]
        try:
            await self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as err:
            logger.warning("sqs.visibility_failed", error=str(err))

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            resp = await self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as err:
            # Not deleted means redelivered: harmless, the lifecycle recognises the repeat.
            logger.warning("sqs.delete_failed", error=str(err), count=len(entries))
            return
        if resp.get("Failed"):
            logger.warning("sqs.delete_partial", failed=resp["Failed"])
