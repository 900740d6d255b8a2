"""Warm-up, anomaly likelihood, range novelty and hysteresis: scores in, anomaly events out.

Anomaly likelihood (Ahmad et al. 2017, Numenta's NAB detector): the log of the forest's score is
averaged over the last ``average`` points; the average's mean ``m`` and variance ``s^2`` over a
long window (exponentially weighted, about ``window`` points) give its Gaussian tail probability
``p = Q((avg - m) / s)``. An event starts when ``p < p_enter``, i.e. when the average clears
``level = max(log floor, m + Q^-1(p_enter) s)``: the bar is a probability, the same for every
series whatever the scale of its scores. Averaging makes a sustained change stand out and a
single noisy score not; the log makes the forest's positive, right-skewed scores near enough
Gaussian for the tail probability to mean what it says (on raw scores the same rule raised a
third more false alerts on NAB's development subset). A single score clears the same probability on its own when its
log exceeds ``m + Q^-1(p_enter) sqrt(average) s`` (one point's spread, exact for independent
scores and larger than the truth for correlated ones): one wild frame, a bearing 30 degrees hotter
than its peers for a moment, is not averaged away.

Range novelty (the same detector's "spatial anomaly"): a value more than ``novelty`` times the
range seen so far beyond that range, on any channel, starts an event too, even within the
refractory time: a level the series has never reached is news whatever the forest made of it.

Hysteresis makes a long anomaly one event: it ends only after ``quiet`` consecutive points with
``p > p_exit`` and no novelty. After an event, ``refractory`` points must pass before the
likelihood may start another (the alert-fatigue guard). Nothing is decided before ``warmup``
points (the forest's sample is full); the statistics start after ``stats_after``, so a series
whose statistics start afresh (restored from an older snapshot) waits ``warmup - stats_after``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Phase", "ThresholdConfig", "Thresholder"]

_TINY = 1e-12
_RETIRED = frozenset({"z_enter", "z_exit"})
"""Fields of the fixed-z rule that snapshots written before the likelihood still carry."""


class Phase(enum.IntEnum):
    """Where a point stands relative to an anomaly event."""

    WARMUP = 0
    NORMAL = 1
    START = 2
    ONGOING = 3
    END = 4


@dataclass(frozen=True, slots=True)
class ThresholdConfig:
    """Round values, the same for every series: ``p_enter`` and ``p_exit`` are Numenta's red
    and yellow likelihoods (0.99999, 0.999), ``novelty`` its 5 % range tolerance; ``average``
    16 points (Numenta averages 10; 16 did better on the NAB development subset),
    ``warmup`` the forest's sample size and ``refractory`` half of it,
    ``floor`` the score below which nothing is unusual (a normal point scores well below 1).
    ``novelty=None`` turns the range check off.
    """

    warmup: int = 256
    stats_after: int = 64
    window: float = 5000.0
    average: int = 16
    p_enter: float = 1e-5
    p_exit: float = 1e-3
    floor: float = 1.0
    quiet: int = 16
    refractory: int = 128
    novelty: float | None = 0.05

    @property
    def z_enter(self) -> float:
        """Standard deviations of the averaged log score that ``p_enter`` stands for."""
        return NormalDist().inv_cdf(1.0 - self.p_enter)

    @property
    def z_exit(self) -> float:
        return NormalDist().inv_cdf(1.0 - self.p_exit)

    @classmethod
    def from_saved(cls, raw: dict[str, Any]) -> ThresholdConfig:
        """A config as saved by any snapshot version: retired fields are dropped, new ones
        take their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known - _RETIRED
        if unknown:
            raise ValueError(f"unknown threshold settings {sorted(unknown)}")
        return cls(**{k: v for k, v in raw.items() if k in known})


class Thresholder:
    """Per-series decision state for a fleet (``channels`` raw inputs per series)."""

    STATE_FIELDS = (
        "log_mean",
        "log_var",
        "log_n",
        "count",
        "in_event",
        "quiet_run",
        "since_end",
        "recent",
        "low",
        "high",
        "ranged",
    )

    def __init__(self, n_series: int, config: ThresholdConfig, channels: int = 1) -> None:
        self.config = config
        self.log_mean = np.zeros(n_series)
        self.log_var = np.zeros(n_series)
        self.log_n = np.zeros(n_series, np.int64)
        """Statistics of the averaged log score (before format 3 they were of the raw score,
        under other names: a restored older snapshot starts them afresh)."""
        self.count = np.zeros(n_series, np.int64)
        self.in_event = np.zeros(n_series, np.bool_)
        self.quiet_run = np.zeros(n_series, np.int64)
        self.since_end = np.full(n_series, 1 << 30, np.int64)
        self.recent = np.zeros((n_series, config.average))
        """The last ``average`` log scores, oldest first (``count`` says how many are real)."""
        self.low = np.full((n_series, channels), np.inf)
        self.high = np.full((n_series, channels), -np.inf)
        self.ranged = np.zeros(n_series, np.int64)
        """Values in ``low``/``high`` (a restored older snapshot starts its range afresh)."""

    def _averages(
        self,
        series: npt.NDArray[np.int64],
        logs: npt.NDArray[np.float64],
        lengths: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """Mean of the last ``average`` log scores at each frame (n, B); keeps the newest."""
        k = self.config.average
        n, b = logs.shape
        seq = np.concatenate([self.recent[series], logs], axis=1)  # (n, k + B)
        csum = np.concatenate([np.zeros((n, 1)), np.cumsum(seq, axis=1)], axis=1)
        j = np.arange(b)
        # Frame j is seq[k + j]; its window is seq[j + 1 .. k + j].
        total = csum[:, k + j + 1] - csum[:, j + 1]
        real = np.minimum(self.count[series][:, None] + j + 1, k)
        idx = lengths[:, None] + np.arange(k)[None, :]  # the last k entries of the real frames
        self.recent[series] = seq[np.arange(n)[:, None], idx]
        avg: npt.NDArray[np.float64] = total / real
        return avg

    def _novel(
        self,
        series: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        live: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Frames (n, B) with a channel beyond the range seen before them, widened by ``novelty``
        of its span (only once the range holds ``warmup`` values and has a span)."""
        tol = self.config.novelty
        ok = live[..., None]
        hi = np.maximum.accumulate(np.where(ok, values, -np.inf), axis=1)
        lo = np.minimum.accumulate(np.where(ok, values, np.inf), axis=1)
        h0, l0 = self.high[series][:, None], self.low[series][:, None]
        hi, lo = np.maximum(hi, h0), np.minimum(lo, l0)
        before_hi = np.concatenate([h0, hi[:, :-1]], axis=1)
        before_lo = np.concatenate([l0, lo[:, :-1]], axis=1)
        seen = self.ranged[series][:, None] + np.cumsum(live, axis=1) - live
        self.high[series], self.low[series] = hi[:, -1], lo[:, -1]
        self.ranged[series] += live.sum(axis=1)
        if tol is None:
            return np.zeros(live.shape, np.bool_)
        span = before_hi - before_lo
        with np.errstate(invalid="ignore"):
            out = (values > before_hi + tol * span) | (values < before_lo - tol * span)
        out &= span > 0
        novel: npt.NDArray[np.bool_] = out.any(axis=2) & live & (seen >= self.config.warmup)
        return novel

    def step(
        self,
        series: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        lengths: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64] | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
        """Alert levels (the score whose log the average must clear) and phases (n, B) for
        scores (n, B) and the raw inputs (n, B, channels) they came from, in time order."""
        cfg = self.config
        n, b = scores.shape
        z_enter, z_exit = cfg.z_enter, cfg.z_exit
        floor = np.log(cfg.floor)
        need = max(cfg.warmup - cfg.stats_after, 1)  # statistics behind the first decision
        # What does not depend on the event state is laid out (frame, series) up front, and
        # the phases are derived after the loop: the loop keeps only the recurrences.
        cols = np.arange(b)[:, None]
        live_all = cols < lengths
        c = self.count[series]
        seen = c + np.minimum(cols, lengths)  # points counted before each frame
        warm_all = live_all & (seen >= cfg.warmup)
        learn_all = live_all & (seen >= cfg.stats_after)
        logs = np.log(np.maximum(scores, _TINY))
        log_all = np.ascontiguousarray(logs.T)
        avg_all = np.ascontiguousarray(self._averages(series, logs, lengths).T)
        z_point = z_enter * np.sqrt(cfg.average)
        if values is None:
            novel_all = np.zeros((b, n), np.bool_)
        else:
            novel_all = np.ascontiguousarray(self._novel(series, values, live_all.T).T)
        m, v, ns = self.log_mean[series], self.log_var[series], self.log_n[series]
        ev, qr, se = self.in_event[series], self.quiet_run[series], self.since_end[series]
        alpha = 1.0 / cfg.window
        level_out = np.empty((b, n))
        ready_all = np.empty((b, n), np.bool_)
        start_all = np.empty((b, n), np.bool_)
        end_all = np.empty((b, n), np.bool_)
        ev_all = np.empty((b, n), np.bool_)
        for j in range(b):
            x, novel = avg_all[j], novel_all[j]
            sd = np.sqrt(np.maximum(v, 0.0))
            level = np.maximum(floor, m + z_enter * sd)
            hot = (x > level) | (log_all[j] > np.maximum(floor, m + z_point * sd))
            ready = warm_all[j] & (ns >= need)
            start = ready & ~ev & ((hot & (se >= cfg.refractory)) | novel)
            calm = ~novel & (x < np.maximum(floor, m + z_exit * sd))
            qr = np.where(ev & live_all[j] & calm, qr + 1, 0)
            end = ready & ev & (qr >= cfg.quiet)
            level_out[j], ready_all[j], start_all[j], end_all[j], ev_all[j] = (
                level,
                ready,
                start,
                end,
                ev,
            )
            ev = ev != (start | end)  # a start needs no event, an end needs one
            se = np.where(end, 0, se + live_all[j])
            # Every score feeds the statistics, an event's too (as Numenta's estimate does):
            # a lasting change becomes the new normal instead of holding an event open.
            learn = learn_all[j]
            ns = ns + learn
            a = np.where(learn, np.maximum(1.0 / np.maximum(ns, 1), alpha), 0.0)
            dev = x - m
            m = m + a * dev
            v = (1.0 - a) * (v + a * dev * dev)
        ongoing = ready_all & ev_all & ~end_all
        phase = np.select(
            [~ready_all, start_all, ongoing, end_all],
            [Phase.WARMUP, Phase.START, Phase.ONGOING, Phase.END],
            Phase.NORMAL,
        )
        phase_out = np.where(live_all, phase, Phase.WARMUP).astype(np.int8).T
        self.log_mean[series], self.log_var[series], self.log_n[series] = m, v, ns
        self.count[series] = c + np.minimum(b, lengths)
        self.in_event[series], self.quiet_run[series], self.since_end[series] = ev, qr, se
        return np.exp(level_out.T), phase_out
