"""Array aliases shared by the forest's modules."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["F32", "NIL", "FloatArray", "IntArray"]

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
NIL = -1  # no node
