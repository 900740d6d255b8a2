"""Online per-channel normalisation for a fleet of series.

``z_t = (x_t - m_{t-1}) / sqrt(v_{t-1} + eps)`` with exponentially weighted mean and
variance, ``m_t = m_{t-1} + a_t (x_t - m_{t-1})`` and
``v_t = (1 - a_t) (v_{t-1} + a_t (x_t - m_{t-1})^2)``, ``a_t = max(1/n_t, a)``:
a plain running mean until ``n = 1/a``, then a window of about ``1/a`` points.
A point is normalised with the statistics from before it, so an outlier cannot
shrink itself. The window should be long (the forest keeps points normalised at
their arrival, and a fast-moving scale would make old and new points disagree).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["OnlineNormaliser"]

_EPS = 1e-12
_REL = 1e-6
_CLIP = 1e4


class OnlineNormaliser:
    """Per-series, per-channel EW mean/variance; ``window`` ~ 1/a points."""

    STATE_FIELDS = ("mean", "var", "count")

    def __init__(self, n_series: int, channels: int, window: float) -> None:
        self.alpha = 1.0 / window
        self.mean = np.zeros((n_series, channels))
        self.var = np.zeros((n_series, channels))
        self.count = np.zeros(n_series, np.int64)

    def transform_update(
        self,
        series: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        lengths: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """Normalise ``values`` (n, B, C) in time order and learn from them; padding is left 0."""
        b = values.shape[1]
        m, v, c = self.mean[series], self.var[series], self.count[series]
        # Counts, rates and masks do not depend on the values: laid out (frame, series) first.
        cols = np.arange(b)[:, None]
        live = cols < lengths
        after = c + np.minimum(cols + 1, lengths)  # points counted once frame j is in
        rate = np.where(live, np.maximum(1.0 / np.maximum(after, 1), self.alpha), 0.0)[..., None]
        shown = live & (after - live > 1)  # a frame is normalised once two came before it
        xs = np.ascontiguousarray(values.transpose(1, 0, 2))
        raw = np.empty_like(xs)
        for j in range(b):
            dev = xs[j] - m
            # The variance floor is relative to the level, so a constant channel that
            # moves gives a large but finite z; the clip keeps boxes sane after it.
            scale = np.sqrt(v + _EPS + (_REL * np.abs(m)) ** 2)
            raw[j] = np.clip(dev / scale, -_CLIP, _CLIP)
            a = rate[j]
            m = m + a * dev
            v = (1.0 - a) * (v + a * dev * dev)
        c = c + np.minimum(b, lengths)
        out = np.where(shown[..., None], raw, 0.0).transpose(1, 0, 2)
        self.mean[series], self.var[series], self.count[series] = m, v, c
        return out
