"""The per-train anomaly detector for a fleet: normalise, shingle, score, threshold.

One :class:`FleetDetector` holds the models of ``n_series`` trains (series
indices ``0..n-1``; the caller maps train ids to indices). :meth:`process`
advances any subset of them by a block of frames each and returns a
:class:`DecisionBatch`: score, threshold, phase and per-channel attribution per
frame. Results do not depend on how frames are grouped into calls or on which
other trains share the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from railpulse_detector.forest import ForestConfig, RandomCutForest
from railpulse_detector.normalise import OnlineNormaliser
from railpulse_detector.threshold import Phase, ThresholdConfig, Thresholder

__all__ = ["Decision", "DecisionBatch", "DetectorConfig", "FleetDetector"]


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Defaults: 50 trees x 256 samples (AWS RCF's defaults; 50 trees keep the
    score's tree-to-tree noise low, 256 samples see a few hundred points of
    context), shingle 4 (a few steps of shape, and it keeps a one-channel
    model under 1 MB), decay 1/(10 x 256), normaliser window 1/decay.

    Memory per train at 50 x 256 is about ``309 kB + 154 kB x D`` with
    ``D = channels x shingle`` (boxes of 256 internal nodes and a sentinel, 257 leaf
    points, masses, free lists and sampler weights per tree): 926 kB for D = 4,
    1.54 MB for D = 8. Fewer trees scale it down linearly.
    """

    channels: int = 1
    shingle: int = 4
    num_trees: int = 50
    sample_size: int = 256
    time_decay: float = 0.0
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)

    @property
    def forest(self) -> ForestConfig:
        return ForestConfig(
            dimensions=self.channels * self.shingle,
            num_trees=self.num_trees,
            sample_size=self.sample_size,
            time_decay=self.time_decay,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """One frame's verdict; attribution is per channel, summed over the shingle."""

    series: int
    score: float
    threshold: float
    phase: Phase
    high: tuple[float, ...]
    low: tuple[float, ...]

    @property
    def is_anomaly(self) -> bool:
        return self.phase in (Phase.START, Phase.ONGOING)


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    """Arrays over (n series, B frames); ``high``/``low`` are (n, B, channels)."""

    series: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    threshold: npt.NDArray[np.float64]
    phase: npt.NDArray[np.int8]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]

    def decisions(self) -> list[Decision]:
        """The real (non-padding) frames as objects, series by series, in time order."""
        out: list[Decision] = []
        for i, s in enumerate(self.series.tolist()):
            for j in range(int(self.lengths[i])):
                out.append(
                    Decision(
                        series=s,
                        score=float(self.score[i, j]),
                        threshold=float(self.threshold[i, j]),
                        phase=Phase(int(self.phase[i, j])),
                        high=tuple(self.high[i, j].tolist()),
                        low=tuple(self.low[i, j].tolist()),
                    )
                )
        return out


class FleetDetector:
    """Models of ``len(seeds)`` series with ``config.channels`` channels each."""

    def __init__(self, config: DetectorConfig, seeds: npt.ArrayLike) -> None:
        self.config = config
        self.forest = RandomCutForest(config.forest, seeds)
        n = self.forest.n_series
        self.normaliser = OnlineNormaliser(n, config.channels, window=1.0 / config.forest.decay)
        self.thresholder = Thresholder(n, config.threshold, config.channels)
        # Last shingle - 1 normalised frames of each series, oldest first.
        self.history = np.zeros((n, config.shingle - 1, config.channels))
        self.last: DecisionBatch | None = None
        """The latest `process` call's decisions (for a caller that wants every frame's score,
        not only the anomalies: `railpulse detect`)."""

    @property
    def n_series(self) -> int:
        return self.forest.n_series

    def nbytes_per_series(self) -> int:
        """Model bytes of one series (forest, sampler, normaliser, threshold, shingle)."""
        total = self.forest.nbytes() + self.history.nbytes
        total += sum(getattr(self.normaliser, f).nbytes for f in OnlineNormaliser.STATE_FIELDS)
        total += sum(getattr(self.thresholder, f).nbytes for f in Thresholder.STATE_FIELDS)
        return int(total) // self.n_series

    def extend(self, seeds: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Add fresh models for new trains; returns their series indices.

        Every state array is laid out series-major, so growing the fleet is one
        concatenation per array (amortise by adding trains in batches).
        """
        fresh = FleetDetector(self.config, seeds)
        start = self.n_series
        for mine, theirs in (
            (self.forest, fresh.forest),
            (self.normaliser, fresh.normaliser),
            (self.thresholder, fresh.thresholder),
        ):
            for name in type(mine).STATE_FIELDS:
                setattr(mine, name, np.concatenate([getattr(mine, name), getattr(theirs, name)]))
        self.history = np.concatenate([self.history, fresh.history])
        return np.arange(start, self.n_series, dtype=np.int64)

    def process(
        self,
        series: npt.ArrayLike,
        values: npt.ArrayLike,
        lengths: npt.ArrayLike | None = None,
        explain: bool = True,
    ) -> DecisionBatch:
        """Advance ``series`` (n,) by frames ``values`` (n, B, channels) or (n, channels).

        ``lengths`` (n,) gives how many of the B frames are real for each series;
        ``explain=False`` leaves ``high``/``low`` at 0 and saves about a fifth of the work.
        """
        cfg = self.config
        ser = np.asarray(series, dtype=np.int64).reshape(-1)
        vals = np.asarray(values, dtype=np.float64).reshape(ser.size, -1, cfg.channels)
        n, b = vals.shape[:2]
        lens = np.full(n, b, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        z = self.normaliser.transform_update(ser, vals, lens)

        # Shingles: the previous shingle-1 frames, then this block.
        seq = np.concatenate([self.history[ser], z], axis=1)  # (n, s-1+B, C)
        win = np.lib.stride_tricks.sliding_window_view(seq, cfg.shingle, axis=1)
        points = win.transpose(0, 1, 3, 2).reshape(n, b, cfg.channels * cfg.shingle)
        keep = cfg.shingle - 1
        if keep:
            idx = lens[:, None] + np.arange(keep)[None, :]  # last real frames of seq
            self.history[ser] = seq[np.arange(n)[:, None], idx]

        out = self.forest.update(ser, points, lens, explain)
        thr, phase = self.thresholder.step(ser, out.score, lens, vals)
        # Attribution per channel: shingle dims are laid out (time, channel).
        att = out.attribution.reshape(n, b, 2, cfg.shingle, cfg.channels).sum(axis=3)
        self.last = DecisionBatch(
            series=ser,
            lengths=lens,
            score=out.score,
            threshold=thr,
            phase=phase,
            high=att[:, :, 0],
            low=att[:, :, 1],
        )
        return self.last
