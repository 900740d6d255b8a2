"""The Random Cut Forest side of the detector: every train's forest, advanced batch by batch.

One `FleetDetector` per device kind holds the forests of all its trains (vectorised: a batch of
frames from many trains is one `process` call). Frames are fed in sequence order, once: a frame at
or below a train's last sequence number (a replay, a duplicate) or marked `backfill` (older than
what the model has seen; the hard limits still judge it) is not fed to the forest.

The snapshot (`dumps`) must always be written, since the checkpoint waits for it: a train whose
own small state cannot be serialised (say a sequence number beyond what msgpack holds) loses that
state (its last sequence number, its open event's key: the train starts those afresh) rather than
failing every snapshot of the shard; `take_dropped` tells the caller which trains, for a metric.
The handler refuses such frames before they get here; this is the second line.

An event (the thresholder's START) becomes one `model` anomaly whose attribution names the
channels that moved (each feature maps to the channel it stood for in that frame); while the event
lasts it is re-asserted every `reassert_ms`, so the notifier keeps the alarm open. An event whose
largest contribution is a `context` channel of the catalogue (the outside temperature: the
warmest afternoon of the year is new to a forest, and no fault of the train) is learnt, not raised.

Memory per train (25 trees x 256 samples, shingle 1): about 0.93 MB for the 10 train features,
0.62 MB for the 6 generic-sensor features (see `DetectorConfig`'s formula).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import msgspec
import numpy as np
import numpy.typing as npt

from railpulse_detector import snapshot
from railpulse_detector.detector import DetectorConfig, FleetDetector
from railpulse_detector.features import FeatureSet, feature_sets
from railpulse_detector.memory import JudgeState, Remembers
from railpulse_detector.operating import OperatingState, PowerClock
from railpulse_detector.threshold import Phase, ThresholdConfig
from railpulse_shared.catalogue import Catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    AnomalyKind,
    Attribution,
    DeviceKind,
    Severity,
)

__all__ = ["BANK_FORMAT", "ModelBank", "ModelSettings"]

BANK_FORMAT = 1
MODEL_VERSION = "rcf-1"


_DECISIONS = ThresholdConfig()


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """The service's forests. Trains judge absolute values by the catalogue's hard limits, so
    their forests do not add the range check (``ThresholdConfig.novelty``); generic sensors
    keep it."""

    num_trees: int = 25
    sample_size: int = 256
    shingle: int = 1
    warmup: int = 400
    """Frames a forest sees before its scores are trusted. Below ~400 the score statistics
    were immature and healthy simulated trains raised false alerts right after warm-up."""
    refractory: int | None = None
    """Frames after an event before the likelihood may start another; None: the warm-up."""
    p_enter: float = _DECISIONS.p_enter
    floor: float = 1.5
    """The score below which nothing is unusual. NAB's generic series do best at the library's
    1.0; on the simulated fleet (1 Hz, smooth physical channels) 1.0 raised 0.8 false alerts per
    train-hour, mostly the first compressor cycle after the warm-up, and 1.5 none in ten."""
    reassert_ms: int = 10_000
    top_channels: int = 3
    settle_s: float = 1800.0
    """A train's forest raises nothing until this long after the train first moved since it
    powered up (it keeps learning): a cold start, preparation and the first half hour of service
    (bearings and motors warming from the outside temperature, time constants of 10 to 15 min)
    are a passage every train makes every morning, not an anomaly, and a forest that woke with the
    train has seen none of it. Generic sensors do not move: theirs judge after the warm-up."""


class _KindState(msgspec.Struct):
    trains: list[str]
    detector: bytes
    carry: list[list[float]]
    event_key: dict[str, str]


class _BankState(msgspec.Struct):
    version: int
    kinds: dict[str, _KindState]
    last_seq: dict[str, int]
    operating: dict[str, list[int | None]] = msgspec.field(default_factory=dict)
    """train -> [last frame, powered up, first moved (ms), met moving (0/1)]: a new owner does not take the
    shard's trains for a cold start."""
    judges: dict[str, JudgeState] = msgspec.field(default_factory=dict)
    """What the judges beside the forests learnt (`memory`), by the name they were given."""


def _serialisable(value: object) -> bool:
    try:
        msgspec.msgpack.encode(value)
    except (msgspec.EncodeError, OverflowError, TypeError, ValueError):
        return False
    return True


def _seed(train: str) -> int:
    return int.from_bytes(hashlib.blake2b(train.encode(), digest_size=8).digest(), "little")


class _Kind:
    """The forests of one device kind."""

    def __init__(self, features: FeatureSet, config: DetectorConfig) -> None:
        self.features = features
        self.config = config
        self.fleet: FleetDetector | None = None
        self.index: dict[str, int] = {}
        self.carry: dict[str, npt.NDArray[np.float64]] = {}
        self.event_key: dict[str, str] = {}
        self.last_emit: dict[str, int] = {}
        self.muted: set[str] = set()

    def ensure(self, trains: Sequence[str]) -> None:
        new = [t for t in dict.fromkeys(trains) if t not in self.index]
        if not new:
            return
        seeds = [_seed(t) for t in new]
        if self.fleet is None:
            self.fleet = FleetDetector(self.config, seeds)
            first = 0
        else:
            first = int(self.fleet.extend(seeds)[0])
        for i, train in enumerate(new):
            self.index[train] = first + i
            self.carry[train] = self.features.new_state()


class ModelBank:
    def __init__(self, catalogue: Catalogue, settings: ModelSettings | None = None) -> None:
        self.settings = s = settings or ModelSettings()
        threshold = ThresholdConfig(
            warmup=s.warmup,
            refractory=s.warmup if s.refractory is None else s.refractory,
            p_enter=s.p_enter,
            floor=s.floor,
        )
        self.kinds = {
            kind: _Kind(
                features,
                DetectorConfig(
                    channels=features.size,
                    shingle=s.shingle,
                    num_trees=s.num_trees,
                    sample_size=s.sample_size,
                    threshold=(
                        replace(threshold, novelty=None) if kind is DeviceKind.TRAIN else threshold
                    ),
                ),
            )
            for kind, features in feature_sets(catalogue).items()
        }
        self.last_seq: dict[str, int] = {}
        self._dropped: list[str] = []
        self._clock = PowerClock()
        self._settling: set[tuple[str, int]] = set()
        """(train, seq) of this batch's frames the forest learns from but does not judge."""
        self._context = frozenset(n for n, c in catalogue.channels.items() if c.context)
        """Channels of the train's surroundings: an event they explain best is not raised."""
        self.judges: dict[str, Remembers] = {}
        """Other judges whose learnt state the bank's snapshot carries (`remember`)."""

    def remember(self, name: str, judge: Remembers) -> None:
        """Carry `judge`'s state in this bank's snapshot, under `name`."""
        self.judges[name] = judge

    def bytes_per_model(self, kind: DeviceKind = DeviceKind.TRAIN) -> int:
        probe = FleetDetector(self.kinds[kind].config, [1])
        return probe.nbytes_per_series()

    def score(self, frames: Sequence[AcceptedFrame]) -> dict[tuple[str, int], list[Anomaly]]:
        """Advance the forests by the live frames of a batch; anomalies by (train, seq)."""
        fresh: dict[DeviceKind, dict[str, list[AcceptedFrame]]] = {}
        for frame in sorted(frames, key=lambda f: (f.train, f.seq)):
            if frame.backfill or frame.seq <= self.last_seq.get(frame.train, -1):
                continue
            self.last_seq[frame.train] = frame.seq
            if frame.device_kind is DeviceKind.TRAIN:
                state, _ = self._clock.update(
                    frame.train, frame.ts_ms, frame.speed_kmh or _speed(frame)
                )
                in_service = state.seconds_in_service(frame.ts_ms)
                # A train that reports no speed shows no morning start: judged as in service.
                reports_speed = frame.speed_kmh is not None or "speed" in frame.readings
                if reports_speed and (in_service is None or in_service < self.settings.settle_s):
                    self._settling.add((frame.train, frame.seq))
            fresh.setdefault(frame.device_kind, {}).setdefault(frame.train, []).append(frame)
        found: dict[tuple[str, int], list[Anomaly]] = {}
        for kind, by_train in fresh.items():
            self._advance(self.kinds[kind], by_train, found)
        self._settling.clear()
        return found

    def _advance(
        self,
        kind: _Kind,
        by_train: dict[str, list[AcceptedFrame]],
        found: dict[tuple[str, int], list[Anomaly]],
    ) -> None:
        trains = list(by_train)
        kind.ensure(trains)
        assert kind.fleet is not None
        width = max(len(f) for f in by_train.values())
        values = np.zeros((len(trains), width, kind.features.size))
        sources: list[list[tuple[str, ...]]] = []
        for i, train in enumerate(trains):
            rows = []
            for j, frame in enumerate(by_train[train]):
                values[i, j], names = kind.features.extract(frame, kind.carry[train])
                rows.append(names)
            sources.append(rows)
        lengths = np.array([len(by_train[t]) for t in trains])
        series = np.array([kind.index[t] for t in trains])
        batch = kind.fleet.process(series, values, lengths)
        phases = batch.phase
        for i, j in zip(
            *np.nonzero((phases == Phase.START) | (phases == Phase.ONGOING)), strict=True
        ):
            train = trains[i]
            frame = by_train[train][j]
            start = phases[i, j] == Phase.START
            if start:
                kind.muted.discard(train)
                if (train, frame.seq) in self._settling:
                    kind.muted.add(train)  # an event born while settling stays silent
                elif sources[i][j][int(np.argmax(batch.high[i, j] + batch.low[i, j]))] in (
                    self._context
                ):
                    kind.muted.add(train)  # the surroundings are unusual, not the train
            if train in kind.muted:
                continue
            if not start and frame.ts_ms - kind.last_emit.get(train, 0) < self.settings.reassert_ms:
                continue
            contributions = batch.high[i, j] + batch.low[i, j]
            order = np.argsort(-contributions)[: self.settings.top_channels]
            channels = [
                Attribution(
                    channel=sources[i][j][k],
                    contribution=float(contributions[k]),
                    direction="high" if batch.high[i, j, k] >= batch.low[i, j, k] else "low",
                )
                for k in order
                if contributions[k] > 0
            ]
            if start or train not in kind.event_key:
                top = channels[0].channel if channels else "forest"
                kind.event_key[train] = f"model:{top}"
            key = kind.event_key[train]
            kind.last_emit[train] = frame.ts_ms
            score, threshold = float(batch.score[i, j]), float(batch.threshold[i, j])
            found.setdefault((train, frame.seq), []).append(
                Anomaly(
                    anomaly_id=f"{train}:{frame.seq}:{key}",
                    train=train,
                    ts_ms=frame.ts_ms,
                    frame_seq=frame.seq,
                    category=AnomalyKind.MODEL,
                    severity=Severity.CRITICAL if score > 2 * threshold else Severity.WARNING,
                    score=score,
                    threshold=threshold,
                    alert_key=key,
                    channels=channels,
                    model_version=MODEL_VERSION,
                    message=f"unusual behaviour (RCF score {score:.2f}, alert level "
                    f"{threshold:.2f}); "
                    f"explained by {', '.join(c.channel for c in channels) or 'the forest'}",
                    received_ms=frame.received_ms,
                    ingested_ms=frame.ingested_ms,
                )
            )

    def dumps(self) -> bytes:
        """The whole bank, versioned: forests (their own format), carry-forward state, positions."""
        try:
            return self._encode()
        except (msgspec.EncodeError, OverflowError, TypeError, ValueError):
            dropped = self._drop_unserialisable()
            if not dropped:
                raise
            self._dropped.extend(dropped)
            return self._encode()

    def take_dropped(self) -> list[str]:
        """The trains whose state `dumps` dropped since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def _drop_unserialisable(self) -> list[str]:
        """Forget the per-train values msgpack refuses; the trains whose state went."""
        dropped = [t for t, seq in self.last_seq.items() if not _serialisable({t: seq})]
        for train in dropped:
            del self.last_seq[train]
        for kind in self.kinds.values():
            for train, key in list(kind.event_key.items()):
                if not _serialisable({train: key}):
                    del kind.event_key[train]
                    dropped.append(train)
        return dropped

    def _encode(self) -> bytes:
        kinds = {}
        for kind, state in self.kinds.items():
            if state.fleet is None:
                continue
            trains = sorted(state.index, key=state.index.__getitem__)
            kinds[kind.value] = _KindState(
                trains=trains,
                detector=snapshot.dumps(state.fleet),
                carry=[state.carry[t].tolist() for t in trains],
                event_key=dict(state.event_key),
            )
        operating = {
            t: [o.last_ms, o.powered_ms, o.moved_ms, int(o.midway)]
            for t, o in self._clock.trains.items()
        }
        judges = {name: judge.export() for name, judge in self.judges.items()}
        return msgspec.msgpack.encode(
            _BankState(BANK_FORMAT, kinds, dict(self.last_seq), operating, judges)
        )

    def loads(self, data: bytes) -> None:
        """Restore what `dumps` wrote (raises `snapshot.SnapshotError` on a foreign format)."""
        try:
            state = msgspec.msgpack.decode(data, type=_BankState)
        except msgspec.DecodeError as exc:
            raise snapshot.SnapshotError(f"not a model bank: {exc}") from exc
        if state.version != BANK_FORMAT:
            raise snapshot.SnapshotError(f"model bank format {state.version} is not {BANK_FORMAT}")
        for name, learnt in state.judges.items():
            judge = self.judges.get(name)
            if judge is None:
                continue  # a judge this detector no longer has
            try:
                judge.restore(learnt)
            except ValueError as exc:
                raise snapshot.SnapshotError(f"{name}: {exc}") from exc
        for name, saved in state.kinds.items():
            kind = self.kinds[DeviceKind(name)]
            kind.fleet = snapshot.loads(saved.detector)
            kind.index = {t: i for i, t in enumerate(saved.trains)}
            kind.carry = {
                t: np.array(c, dtype=np.float64)
                for t, c in zip(saved.trains, saved.carry, strict=True)
            }
            kind.event_key = dict(saved.event_key)
        self.last_seq = dict(state.last_seq)
        self._clock.trains = {
            t: OperatingState(
                last_ms=o[0], powered_ms=o[1] or 0, moved_ms=o[2], midway=bool(o[3:4] and o[3])
            )
            for t, o in state.operating.items()
        }


def _speed(frame: AcceptedFrame) -> float | None:
    reading = frame.readings.get("speed")
    return reading.value if reading is not None else None
