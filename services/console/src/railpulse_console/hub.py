"""Fan-out of live events to the browsers' server-sent-event streams.

Each stream has a bounded queue. A browser that stops reading loses its oldest events rather
than growing memory without bound: the page reloads its snapshot when it reconnects.
"""

from __future__ import annotations

import asyncio

import msgspec

from railpulse_console.views import FeedItem

__all__ = ["Hub", "Message", "sse"]

Message = tuple[str, bytes]
"""(event name, JSON data)."""

_encoder = msgspec.json.Encoder()


def sse(event: str, data: bytes) -> bytes:
    """One server-sent event (the JSON is one line, so one `data:` field)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class Hub:
    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._queues: set[asyncio.Queue[Message]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(self.maxsize)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._queues.discard(queue)

    def publish(self, kind: str, item: FeedItem) -> None:
        message = (kind, _encoder.encode(item))
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)
