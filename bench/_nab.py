"""NAB corpus loading and scoring (Lavin & Ahmad 2015; numenta/NAB ``sweeper.py``).

Standard profile: A_TP = 1, A_FP = -0.11, A_FN = -1. Inside a window of width W
ending at index e, a detection at i scores ``sigma(-(e - i + 1) / W) / sigma(-1)``
with ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` (so 1 at the window's first point);
only the first detection in a window counts. A detection outside windows scores
``A_FP`` times ``sigma((i - e_prev) / (W_prev - 1))`` relative to the preceding
window (or ``-A_FP`` when there is none; ``sigma = -1`` past 3 widths).
Each missed window costs ``A_FN``. The first ``min(floor(0.15 n), 750)`` points
are probationary and not scored. Corpus score is normalised:
``100 (raw - null) / (perfect - null)`` with the null detector (no detections)
and the perfect one (a detection at each window start).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["FileScorer", "Series", "corpus_score", "load_corpus", "window_f1"]

A_TP, A_FP, A_FN = 1.0, -0.11, -1.0


def _sigma(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0)
    return out


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.strip())


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: npt.NDArray[np.float64]
    windows: list[tuple[int, int]]  # inclusive index ranges


def load_corpus(data: Path, labels: Path) -> list[Series]:
    """Every CSV named in the labels file, with its windows as index ranges."""
    spec: dict[str, list[list[str]]] = json.loads(labels.read_text())
    out = []
    for name in sorted(spec):
        path = data / name
        if not path.exists():
            continue
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        stamps = [_parse(r["timestamp"]) for r in rows]
        values = np.array([float(r["value"]) for r in rows])
        windows = []
        for start, end in spec[name]:
            i = int(
                np.searchsorted(
                    np.array(stamps, dtype="datetime64[us]"), np.datetime64(_parse(start))
                )
            )
            j = (
                int(
                    np.searchsorted(
                        np.array(stamps, dtype="datetime64[us]"),
                        np.datetime64(_parse(end)),
                        "right",
                    )
                )
                - 1
            )
            windows.append((i, j))
        out.append(Series(name=name, values=values, windows=windows))
    return out


class FileScorer:
    """Per-point NAB weights of one file, so any set of detections scores in O(n)."""

    def __init__(self, n: int, windows: list[tuple[int, int]]) -> None:
        self.n = n
        self.windows = windows
        self.probation = min(math.floor(0.15 * n), int(0.15 * 5000))
        idx = np.arange(n, dtype=np.float64)
        self.window_of = np.full(n, -1, np.int64)
        self.weight = np.full(n, A_FP)  # before any window: |A_FP| * (-1)
        max_tp = float(_sigma(np.array([-1.0]))[0])
        prev_end, prev_w = -1, 0.0
        bounds = [*windows, (n, n)]
        for w, (s, e) in enumerate(windows):
            width = float(e - s + 1)
            self.window_of[s : e + 1] = w
            pos = -(e - idx[s : e + 1] + 1) / width
            self.weight[s : e + 1] = A_TP * _sigma(pos) / max_tp
            prev_end, prev_w = e, width
            nxt = bounds[w + 1][0]
            if prev_w > 1:
                past = np.abs(prev_end - idx[e + 1 : nxt]) / (prev_w - 1.0)
                self.weight[e + 1 : nxt] = -A_FP * _sigma(past)
        self.weight[: self.probation] = 0.0
        self.window_of[: self.probation] = -1

    def raw(self, detections: npt.NDArray[np.bool_]) -> tuple[float, int, int, int]:
        """Raw score, windows hit, windows missed and detections outside windows."""
        det = detections.copy()
        det[: self.probation] = False
        outside = det & (self.window_of < 0)
        score = float(self.weight[outside].sum())
        hit = 0
        for w, (s, e) in enumerate(self.windows):
            first = np.flatnonzero(det[s : e + 1] & (self.window_of[s : e + 1] == w))
            if first.size:
                score += float(self.weight[s + first[0]])
                hit += 1
        missed = len(self.windows) - hit
        return score + A_FN * missed, hit, missed, int(outside.sum())

    def null_and_perfect(self) -> tuple[float, float]:
        return A_FN * len(self.windows), A_TP * len(self.windows)

    def best_curve(
        self, scores: npt.NDArray[np.float64], thresholds: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Raw score for detections ``scores >= t`` at each threshold ``t``."""
        s = scores.copy()
        s[: self.probation] = -np.inf
        outside = self.window_of < 0
        out_scores = np.sort(s[outside])
        out_weights = self.weight[outside][np.argsort(s[outside])]
        tail = np.concatenate([np.cumsum(out_weights[::-1])[::-1], [0.0]])
        total = tail[np.searchsorted(out_scores, thresholds, "left")]
        for s0, e0 in self.windows:
            run = np.maximum.accumulate(s[s0 : e0 + 1])
            k = np.searchsorted(run, thresholds, "left")
            hit = k < run.size
            total = total + np.where(hit, self.weight[s0 + np.minimum(k, run.size - 1)], A_FN)
        return total


def corpus_score(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null)


def window_f1(hit: int, missed: int, false_alarms: int) -> tuple[float, float, float]:
    """Window-level precision (windows hit / (hit + alarms outside windows)), recall, F1."""
    precision = hit / (hit + false_alarms) if hit + false_alarms else 0.0
    recall = hit / (hit + missed) if hit + missed else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
