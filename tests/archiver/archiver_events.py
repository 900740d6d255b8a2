"""Alerts and alarm transitions as the detector and notifier put them on Kinesis `events`."""

from __future__ import annotations

from railpulse_shared import codec
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import (
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Attribution,
    Severity,
)

_SEQ = 49_700_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def event_records(
    start_ms: int, *, trains: int = 3, shard: str = "shardId-000000000000"
) -> list[StreamRecord]:
    """Per train: an anomaly, then its alarm raised, acknowledged 90 s later, cleared 10 min later."""
    events: list[Anomaly | AlarmTransition] = []
    for t in range(1, trains + 1):
        train = f"train-{t:03d}"
        at = start_ms + t * 3_600_000  # one per hour: several day/hour partitions
        anomaly_id = f"{train}:42:limit:bearing_temp_{t}"
        events.append(
            Anomaly(
                anomaly_id=anomaly_id,
                train=train,
                ts_ms=at,
                frame_seq=42,
                category=AnomalyKind.LIMIT if t % 2 else AnomalyKind.MODEL,
                severity=Severity.CRITICAL,
                score=3.5,
                threshold=2.0,
                alert_key=f"limit:bearing_temp_{t}",
                channels=[Attribution(channel=f"bearing_temp_{t}", contribution=0.9, value=131.0)],
                detected_ms=at + 120,
            )
        )
        alarm = f"alarm-{train}"
        steps = [
            (AlarmState.RAISED, None, at),
            (AlarmState.ACKNOWLEDGED, AlarmState.RAISED, at + 90_000),
            (AlarmState.CLEARED, AlarmState.ACKNOWLEDGED, at + 600_000),
        ]
        for version, (state, previous, when) in enumerate(steps, start=1):
            events.append(
                AlarmTransition(
                    alarm_id=alarm,
                    train=train,
                    alert_key=f"limit:bearing_temp_{t}",
                    state=state,
                    previous=previous,
                    severity=Severity.CRITICAL,
                    at_ms=when,
                    anomaly_id=anomaly_id,
                    version=version,
                )
            )
    return [
        StreamRecord(
            data=codec.encode(e),
            sequence_number=str(_SEQ + i * 1000),
            partition_key=e.train,
            shard_id=shard,
            stream="events",
        )
        for i, e in enumerate(events, start=1)
    ]
