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
        out = np.zeros_like(values)
        m, v, c = self.mean[series], self.var[series], self.count[series].copy()
        for j in range(b):
            live = j < lengths
            x = values[:, j]
            dev = x - m
            # The variance floor is relative to the level, so a constant channel that
            # moves gives a large but finite z; the clip keeps boxes sane after it.
            scale = np.sqrt(v + _EPS + (_REL * np.abs(m)) ** 2)
            z = np.where(c[:, None] > 1, np.clip(dev / scale, -_CLIP, _CLIP), 0.0)
            out[:, j] = np.where(live[:, None], z, 0.0)
            c = c + live
            a = np.where(live, np.maximum(1.0 / np.maximum(c, 1), self.alpha), 0.0)[:, None]
            m = m + a * dev
            v = (1.0 - a) * (v + a * dev * dev)
        self.mean[series], self.var[series], self.count[series] = m, v, c
        return out
