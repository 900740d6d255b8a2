"""Warm-up, adaptive threshold and hysteresis: scores in, anomaly events out.

Like AWS ThresholdedRandomCutForest's thresholder, the threshold follows the
score's own distribution: ``thr = max(floor, m + z_enter * s)`` with ``m``, ``s^2``
an exponentially weighted mean and variance of past scores. Hysteresis makes a
long anomaly one event: it starts when the score exceeds ``thr``; it ends only
after ``quiet`` consecutive points below ``m + z_exit * s`` (``z_exit < z_enter``).
Scores inside an event do not feed the statistics, so an anomaly cannot raise
its own bar. After an event, ``refractory`` points must pass before a new start.
Nothing is decided before ``warmup`` points; statistics start after ``stats_after``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Phase", "ThresholdConfig", "Thresholder"]


class Phase(enum.IntEnum):
    """Where a point stands relative to an anomaly event."""

    WARMUP = 0
    NORMAL = 1
    START = 2
    ONGOING = 3
    END = 4


@dataclass(frozen=True, slots=True)
class ThresholdConfig:
    """Defaults are global, round values from the middle of a plateau found on the NAB
    development subset (NAB standard 53-60 for z_enter 5.5-6.5 and refractory
    192-384), never per series. RCF scores are heavy-tailed, hence a high ``z_enter``;
    ``refractory`` is the alert-fatigue guard: one alert per episode, not per spike.
    """

    warmup: int = 256
    stats_after: int = 64
    window: float = 5000.0
    z_enter: float = 6.0
    z_exit: float = 3.0
    floor: float = 1.0
    quiet: int = 16
    refractory: int = 256


class Thresholder:
    """Per-series thresholding state for a fleet."""

    STATE_FIELDS = ("mean", "var", "n_stats", "count", "in_event", "quiet_run", "since_end")

    def __init__(self, n_series: int, config: ThresholdConfig) -> None:
        self.config = config
        self.mean = np.zeros(n_series)
        self.var = np.zeros(n_series)
        self.n_stats = np.zeros(n_series, np.int64)
        self.count = np.zeros(n_series, np.int64)
        self.in_event = np.zeros(n_series, np.bool_)
        self.quiet_run = np.zeros(n_series, np.int64)
        self.since_end = np.full(n_series, 1 << 30, np.int64)

    def step(
        self,
        series: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        lengths: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
        """Thresholds and phases (n, B) for scores (n, B), in time order."""
        cfg = self.config
        n, b = scores.shape
        m, v, ns, c = self.mean[series], self.var[series], self.n_stats[series], self.count[series]
        ev, qr, se = self.in_event[series], self.quiet_run[series], self.since_end[series]
        alpha = 1.0 / cfg.window
        # What does not depend on the scores is laid out (frame, series) up front, and the
        # phases are derived after the loop: the loop keeps only the recurrences.
        cols = np.arange(b)[:, None]
        live_all = cols < lengths
        seen = c + np.minimum(cols, lengths)  # points counted before each frame
        warm_all = live_all & (seen >= cfg.warmup)
        learn_ok_all = live_all & (seen >= cfg.stats_after)
        xs = np.ascontiguousarray(scores.T)
        thr_out = np.empty((b, n))
        ready_all = np.empty((b, n), np.bool_)
        start_all = np.empty((b, n), np.bool_)
        end_all = np.empty((b, n), np.bool_)
        ev_all = np.empty((b, n), np.bool_)
        for j in range(b):
            x = xs[j]
            sd = np.sqrt(np.maximum(v, 0.0))
            thr = np.maximum(cfg.floor, m + cfg.z_enter * sd)
            ready = warm_all[j] & (ns > 0)
            start = ready & ~ev & (x > thr) & (se >= cfg.refractory)
            calm = x < np.maximum(cfg.floor, m + cfg.z_exit * sd)
            qr = np.where(ev & live_all[j] & calm, qr + 1, 0)
            end = ready & ev & (qr >= cfg.quiet)
            thr_out[j], ready_all[j], start_all[j], end_all[j], ev_all[j] = (
                thr,
                ready,
                start,
                end,
                ev,
            )
            ev = ev != (start | end)  # a start needs no event, an end needs one
            se = np.where(end, 0, se + live_all[j])
            learn = learn_ok_all[j] & ~ev
            ns = ns + learn
            a = np.where(learn, np.maximum(1.0 / np.maximum(ns, 1), alpha), 0.0)
            dev = x - m
            m = m + a * dev
            v = (1.0 - a) * (v + a * dev * dev)
        c = c + np.minimum(b, lengths)
        ongoing = ready_all & ev_all & ~end_all
        phase = np.select(
            [~ready_all, start_all, ongoing, end_all],
            [Phase.WARMUP, Phase.START, Phase.ONGOING, Phase.END],
            Phase.NORMAL,
        )
        phase_out = np.where(live_all, phase, Phase.WARMUP).astype(np.int8).T
        thr_out = thr_out.T
        self.mean[series], self.var[series], self.n_stats[series], self.count[series] = m, v, ns, c
        self.in_event[series], self.quiet_run[series], self.since_end[series] = ev, qr, se
        return thr_out, phase_out
