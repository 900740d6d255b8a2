"""Dead-letter queue depths, and counts by reason where reading them cannot change anything.

Depths come from GetQueueAttributes, which is read-only. Counting by reason needs the messages,
and a ReceiveMessage is not a pure read: it raises each message's receive count, and on a queue
with a redrive policy enough receives move the message on to the next dead-letter queue. So the
console peeks (visibility timeout 0, so the owner sees the message at once) only at terminal
queues — those without a redrive policy — and shows the depth alone for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_console.views import QueueStatus
from railpulse_shared import codec
from railpulse_shared.contracts import RejectedRecord
from railpulse_shared.errors import ContractError

__all__ = ["QueueWatcher"]

logger = structlog.get_logger()

_PEEK_CALLS = 5
"""ReceiveMessage calls per peek (10 messages each): a sample, not a census."""


class QueueWatcher:
    def __init__(self, sqs: Any, names: tuple[str, ...], *, poll_s: float) -> None:
        self.sqs = sqs
        self.names = names
        self.poll_s = poll_s
        self.status: dict[str, QueueStatus] = {n: QueueStatus(queue=n) for n in names}
        self._urls: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for name in self.names:
                await self.refresh(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)

    async def refresh(self, name: str) -> None:
        status = self.status[name]
        try:
            url = self._urls.get(name)
            if url is None:
                url = self._urls[name] = (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]
            attributes = (
                await self.sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "RedrivePolicy",
                    ],
                )
            )["Attributes"]
            status.visible = int(attributes.get("ApproximateNumberOfMessages", 0))
            status.in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
            if "RedrivePolicy" in attributes:
                status.note = "has a redrive policy: depth only (a peek would count as a receive)"
            elif status.visible:
                await self._peek(url, status)
            else:
                status.by_reason, status.sampled, status.note = {}, 0, ""
            status.error = None
        except (ClientError, BotoCoreError) as exc:
            status.error = f"{type(exc).__name__}: {exc}"
            logger.warning("queue_status_failed", queue=name, error=status.error)

    async def _peek(self, url: str, status: QueueStatus) -> None:
        reasons: Counter[str] = Counter()
        seen: set[str] = set()
        for _ in range(_PEEK_CALLS):
            response = await self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                reasons[_reason_of(message)] += 1
        status.by_reason = dict(reasons.most_common())
        status.sampled = len(seen)
        status.note = "terminal queue: reasons from a peek"


def _reason_of(message: dict[str, Any]) -> str:
    attribute = message.get("MessageAttributes", {}).get("reason", {})
    if isinstance(attribute, dict) and attribute.get("StringValue"):
        return str(attribute["StringValue"])
    try:
        event = codec.decode_event(message.get("Body", "").encode())
    except ContractError:
        return "unreadable"
    if isinstance(event, RejectedRecord):
        return event.reason.value
    return event.__struct_config__.tag if isinstance(event.__struct_config__.tag, str) else "other"
