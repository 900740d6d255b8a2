"""Anomalies out: to SQS `alerts` for the notifier and to Kinesis `events` for the archive.

Both writes must succeed before the batch may be checkpointed; both are at least once, and
`anomaly_id` is deterministic, so the notifier and the archive drop what a replay sends again.
"""

from __future__ import annotations

from collections.abc import Sequence

from railpulse_shared import codec
from railpulse_shared.contracts import Anomaly
from railpulse_shared.publish import KinesisPublisher, SqsPublisher

__all__ = ["AnomalyEmitter"]


class AnomalyEmitter:
    def __init__(self, alerts: SqsPublisher, events: KinesisPublisher) -> None:
        self.alerts = alerts
        self.events = events

    async def emit(self, anomalies: Sequence[Anomaly]) -> None:
        if not anomalies:
            return
        encoded = [codec.encode(a) for a in anomalies]
        await self.alerts.send([data.decode() for data in encoded])
        await self.events.put([(a.train, data) for a, data in zip(anomalies, encoded, strict=True)])
