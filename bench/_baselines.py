"""Baselines measured in the same run: rrcf (pure Python) and krcf (Rust build of AWS RCF)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import numpy.typing as npt

__all__ = ["krcf_points_per_s", "rrcf_points_per_s", "rrcf_scores"]


def _rrcf_stream(
    values: npt.NDArray[np.float64], trees: int, sample: int, shingle: int, seed: int
) -> tuple[npt.NDArray[np.float64], list[float]]:
    """Sliding-window rrcf (the library's streaming recipe): CoDisp per point, and the
    wall time after each point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rrcf

    np.random.seed(seed)  # rrcf draws its cuts from numpy's global generator
    forest = [rrcf.RCTree() for _ in range(trees)]
    scores = np.zeros(values.size)
    stamps: list[float] = []
    for i in range(shingle - 1, values.size):
        point = values[i - shingle + 1 : i + 1]
        total = 0.0
        for tree in forest:
            if len(tree.leaves) >= sample:
                tree.forget_point(i - sample)
            tree.insert_point(point, index=i)
            total += tree.codisp(i)
        scores[i] = total / trees
        stamps.append(time.process_time())
    return scores, stamps


def rrcf_scores(
    values: npt.NDArray[np.float64], trees: int, sample: int, shingle: int
) -> npt.NDArray[np.float64]:
    # z-normalise with the first points only (no look-ahead) so boxes are well scaled
    head = values[: max(10, values.size // 10)]
    z = (values - head.mean()) / (head.std() + 1e-9)
    return _rrcf_stream(z, trees, sample, shingle, seed=0)[0]


def rrcf_points_per_s(
    values: npt.NDArray[np.float64], trees: int, sample: int, shingle: int, timed: int
) -> float:
    """CPU-time throughput in steady state: ``timed`` points after the trees are full
    (a sliding window, so every later point costs the same)."""
    n = sample + shingle + timed
    _, stamps = _rrcf_stream(values[:n], trees, sample, shingle, seed=0)
    return timed / (stamps[-1] - stamps[-timed - 1])


def krcf_points_per_s(
    values: npt.NDArray[np.float64], trees: int, sample: int, shingle: int, warm: int, timed: int
) -> float:
    """CPU-time throughput of one krcf forest (score, then update) after ``warm`` points."""
    import krcf

    forest = krcf.RandomCutForest(
        {
            "dimensions": 1,
            "shingle_size": shingle,
            "num_trees": trees,
            "sample_size": sample,
            "output_after": 1,
            "random_seed": 7,
            "parallel_execution_enabled": False,
        }
    )
    for v in values[:warm]:
        forest.score([float(v)])
        forest.update([float(v)])
    t0 = time.process_time()
    for v in values[warm : warm + timed]:
        forest.score([float(v)])
        forest.update([float(v)])
    return timed / (time.process_time() - t0)
