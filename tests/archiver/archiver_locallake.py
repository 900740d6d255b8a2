"""A demo-sized lake in a local folder, written by the archiver's own code (`lake.build_objects`).

What a short `make demo` leaves behind, made in about a second: a few trains over a few days of
simulated telemetry (`simulate.fleet_records`), one train's axle box heating up on the second day
with the limit alerts it raised and the alarm's lifecycle, model and sensor-fault alerts spread
over the days, and frames lost in transit so the completeness differs per train and day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from railpulse_archiver.lake import Archivable, build_objects
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.tables import Located
from railpulse_shared.contracts import (
    AcceptedFrame,
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Attribution,
    Reading,
    Severity,
)

START = datetime(2026, 5, 28, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
HOT_TRAIN = "train-002"
HOT_CHANNEL = "bearing_temp_3"
_HOUR_MS = 3_600_000
_SHARD = "shardId-000000000000"


@dataclass(frozen=True, slots=True)
class DemoLake:
    root: Path
    trains: int
    days: int
    frames: int
    readings: int
    alerts: list[Anomaly]
    lost: dict[str, int]
    """Frames lost in transit per train."""


def _heat(frame: AcceptedFrame) -> AcceptedFrame:
    """train-002's bearing_temp_3 climbs from 30 h to 34 h to ~110 °C, then cools by 38 h."""
    hours = (frame.ts_ms - START_MS) / _HOUR_MS
    if frame.train != HOT_TRAIN or not 30 <= hours < 38:
        return frame
    rise = 75.0 * min(hours - 30, 38 - hours, 4.0) / 4.0
    readings = dict(frame.readings)
    readings[HOT_CHANNEL] = Reading(value=round(readings[HOT_CHANNEL].value + rise, 1))
    return msgspec.structs.replace(frame, readings=readings)


def _lost(frame: AcceptedFrame) -> bool:
    """train-003 loses 3 h on day 1 and 6 h on day 3; train-001 loses 30 min on day 2."""
    hours = (frame.ts_ms - START_MS) / _HOUR_MS
    if frame.train == "train-003":
        return 10 <= hours < 13 or 58 <= hours < 64
    return frame.train == "train-001" and 40 <= hours < 40.5


def _alert(frame: AcceptedFrame, kind: AnomalyKind, channel: str, severity: Severity) -> Anomaly:
    key = f"{kind}:{channel}"
    return Anomaly(
        anomaly_id=f"{frame.train}:{frame.seq}:{key}",
        train=frame.train,
        ts_ms=frame.ts_ms,
        frame_seq=frame.seq,
        category=kind,
        severity=severity,
        score=frame.readings[channel].value if kind == AnomalyKind.LIMIT else 0.97,
        threshold=90.0 if kind == AnomalyKind.LIMIT else 0.9,
        alert_key=key,
        channels=[
            Attribution(channel=channel, contribution=1.0, value=frame.readings[channel].value)
        ],
        model_version="rcf-demo" if kind == AnomalyKind.MODEL else "",
        message=f"{channel} on {frame.train}",
        detected_ms=frame.ts_ms + 300,
    )


def _events(frames: list[AcceptedFrame]) -> list[Anomaly | AlarmTransition]:
    """Limit alerts on every frame of the hot bearing past its operating range (90 °C), one
    alarm for them (raised, acknowledged 20 min later, cleared when it cooled), and a few model
    and sensor-fault alerts elsewhere."""
    events: list[Anomaly | AlarmTransition] = []
    hot = [f for f in frames if f.train == HOT_TRAIN and f.readings[HOT_CHANNEL].value > 90.0]
    for f in hot:
        events.append(_alert(f, AnomalyKind.LIMIT, HOT_CHANNEL, Severity.WARNING))
    if hot:
        first, last = hot[0], hot[-1]
        alarm = f"alarm-{HOT_TRAIN}-{HOT_CHANNEL}"
        key = f"limit:{HOT_CHANNEL}"
        for version, (state, previous, at) in enumerate(
            [
                (AlarmState.RAISED, None, first.ts_ms + 400),
                (AlarmState.ACKNOWLEDGED, AlarmState.RAISED, first.ts_ms + 1_200_000),
                (AlarmState.CLEARED, AlarmState.ACKNOWLEDGED, last.ts_ms + 600_000),
            ],
            start=1,
        ):
            events.append(
                AlarmTransition(
                    alarm_id=alarm,
                    train=HOT_TRAIN,
                    alert_key=key,
                    state=state,
                    previous=previous,
                    severity=Severity.WARNING,
                    at_ms=at,
                    anomaly_id=f"{HOT_TRAIN}:{first.seq}:{key}",
                    version=version,
                )
            )
    by_train = {f.train: [] for f in frames}  # type: dict[str, list[AcceptedFrame]]
    for f in frames:
        by_train[f.train].append(f)
    for t, (_, own) in enumerate(sorted(by_train.items())):
        for n, at in enumerate(range(7 + t * 5, len(own), 97)):
            kind = AnomalyKind.MODEL if n % 3 else AnomalyKind.SENSOR_FAULT
            channel = ("vibration_2", "motor_temp_1", "line_voltage")[n % 3]
            events.append(
                _alert(own[at], kind, channel, Severity.INFO if n % 2 else Severity.WARNING)
            )
    return events


def write_demo_lake(root: Path, *, trains: int = 4, days: int = 3, period_s: int = 300) -> DemoLake:
    """The lake, one flush per hour of records, as the archiver lays it out under `root`."""
    frames: list[AcceptedFrame] = []
    lost: dict[str, int] = {}
    for record in fleet_records(
        trains=trains, start_ms=START_MS, duration_s=days * 86_400, period_s=period_s, shards=1
    ):
        frame = _heat(msgspec.json.decode(record.data, type=AcceptedFrame))
        if _lost(frame):
            lost[frame.train] = lost.get(frame.train, 0) + 1
            continue
        frames.append(frame)
    events = _events(frames)
    items: list[Archivable] = [*frames, *events]
    items.sort(key=lambda e: e.at_ms if isinstance(e, AlarmTransition) else e.ts_ms)
    hourly: dict[int, list[Archivable]] = {}
    for item in items:
        at = item.at_ms if isinstance(item, AlarmTransition) else item.ts_ms
        hourly.setdefault((at - START_MS) // _HOUR_MS, []).append(item)
    seq = 0
    for _, chunk in sorted(hourly.items()):
        located = []
        for item in chunk:
            seq += 1
            located.append((Located("telemetry", _SHARD, str(seq), 0), item))
        first, last = (located[0][0].seq, 0), (located[-1][0].seq, 0)
        for obj in build_objects(_SHARD, located, first, last):
            path = root / obj.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(obj.data)
    return DemoLake(
        root=root,
        trains=trains,
        days=days,
        frames=len(frames),
        readings=sum(len(f.readings) for f in frames),
        alerts=[e for e in events if isinstance(e, Anomaly)],
        lost=lost,
    )
