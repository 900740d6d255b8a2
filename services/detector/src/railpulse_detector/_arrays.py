"""Array aliases and the few gather/reduce helpers on the forest's hot path."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["F32", "NIL", "FloatArray", "IntArray", "i64", "rowsum", "take_rows"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
NIL = -1  # no node
_T = TypeVar("_T", bound=np.generic)


def i64(a: npt.NDArray[np.generic]) -> IntArray:
    return a.astype(np.int64)


# numpy's ``a[idx]`` on 2-D arrays is ~10x slower than ``take`` and its ``sum(axis=1)``
# over a short axis ~10x slower than adding columns: both sit on the hot path.
def take_rows(a: npt.NDArray[_T], idx: IntArray) -> npt.NDArray[_T]:
    return np.take(a, idx, axis=0)


def rowsum(x: npt.NDArray[np.floating[Any]]) -> FloatArray:
    out = x[:, 0].astype(np.float64)
    for j in range(1, x.shape[1]):
        out += x[:, j]
    return out
