"""The detector's decisions over anyone's recording: numeric channels, one row at a time.

`railpulse detect` runs a CSV through this, so an engineer can try the detector on a recording
from a real train before trusting it. It is the service's own decision code, not a copy: one
`DetectorHandler` (its rules and its forests, `decide`), with a catalogue made of the recording's
channels, run as one generic sensor. The channels have no catalogued limits (nothing says what
their operating range is), so what can speak is the forest and the sensor-fault rules (a channel
that goes missing, i.e. empty cells, is a dropout); the peer rule needs templates and the stuck
rule a moving train, and a recording has neither.

Rows are decided one at a time, as the service decides a train's frames in order: a row's
`expected` is the forest's running mean of the channel it names as it stood before that row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from railpulse_detector.features import feature_sets
from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_detector.threshold import Phase
from railpulse_shared.catalogue import Catalogue, Channel
from railpulse_shared.contracts import AcceptedFrame, Anomaly, DeviceKind, Reading

__all__ = ["RecordingDetector", "RowDecision"]

_UNBOUNDED = (-math.inf, math.inf)


@dataclass(frozen=True, slots=True)
class RowDecision:
    ts_ms: int
    score: float
    """The forest's score (0 before the first row it scored)."""
    threshold: float
    phase: str
    """The forest's phase: warmup, normal, start, ongoing, end."""
    alerts: tuple[Anomaly, ...]
    """What the service would send the notifier for this row, most severe first."""
    channel: str
    """The alert's channel, or the forest's top channel while it sees an event."""
    expected: float | None
    seen: float | None

    @property
    def alert(self) -> Anomaly | None:
        return self.alerts[0] if self.alerts else None


class RecordingDetector:
    """One recording, decided as the service decides one device's frames."""

    def __init__(
        self,
        channels: Sequence[str],
        settings: DetectorSettings | None = None,
        *,
        device: str = "recording",
    ) -> None:
        self.channels = tuple(channels)
        self.device = device
        catalogue = Catalogue(
            [
                Channel(
                    name=name,
                    unit="",
                    physical=_UNBOUNDED,
                    operating=_UNBOUNDED,
                    critical=_UNBOUNDED,
                    group="device",
                    description="a recorded channel",
                )
                for name in self.channels
            ]
        )
        self.handler = DetectorHandler(settings or DetectorSettings(), catalogue=catalogue)
        features = feature_sets(catalogue)[DeviceKind.SENSOR]
        self._singles = features.singles
        self._feature = {name: i for i, name in enumerate(features.singles)}
        self._seq = 0

    def decide(self, ts_ms: int, values: Mapping[str, float | None]) -> RowDecision:
        """One row: `values` by channel, None (or absent) for an empty cell."""
        self._seq += 1
        frame = AcceptedFrame(
            train=self.device,
            seq=self._seq,
            ts_ms=ts_ms,
            device_kind=DeviceKind.SENSOR,
            readings={k: Reading(value=v) for k, v in values.items() if v is not None},
        )
        fleet = None
        if self.handler.model is not None:
            fleet = self.handler.model.kinds[DeviceKind.SENSOR].fleet
        before = fleet.normaliser.mean[0].copy() if fleet is not None else None
        [found] = self.handler.decide([frame])
        fleet = fleet or (
            self.handler.model.kinds[DeviceKind.SENSOR].fleet if self.handler.model else None
        )
        batch = fleet.last if fleet is not None else None
        score = threshold = 0.0
        phase = Phase.WARMUP
        top = ""
        if batch is not None:
            score, threshold = float(batch.score[0, 0]), float(batch.threshold[0, 0])
            phase = Phase(int(batch.phase[0, 0]))
            contributions = batch.high[0, 0] + batch.low[0, 0]
            if phase in (Phase.START, Phase.ONGOING) and contributions.max() > 0:
                top = self._singles[int(contributions.argmax())]
        alerts = tuple(sorted(found, key=lambda a: -a.severity))
        channel = alerts[0].alert_key if alerts else top
        expected = None
        if channel in self._feature and before is not None:
            expected = float(before[self._feature[channel]])
        return RowDecision(
            ts_ms=ts_ms,
            score=score,
            threshold=threshold,
            phase=phase.name.lower(),
            alerts=alerts,
            channel=channel,
            expected=expected,
            seen=values.get(channel),
        )
