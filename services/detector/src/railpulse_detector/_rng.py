"""Counter-based random numbers (splitmix64), so that fleet and single-series runs agree.

Every random draw is a pure function of ``(series seed, step, tree, stream, level)``:
a series gets the same numbers whether it is advanced alone or inside a fleet,
and a restored snapshot continues the exact sequence without storing generator state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["STREAM_CUT", "STREAM_SAMPLER", "STREAM_SEPARATE", "U64", "uniform"]

# Independent random streams: sampler weights, separation tests, cut positions.
STREAM_SAMPLER, STREAM_SEPARATE, STREAM_CUT = 0, 1, 2

U64 = npt.NDArray[np.uint64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_STEP = np.uint64(0xD1B54A32D192ED03)
_K_TREE = np.uint64(0xABC98388FB8FAC03)
_K_LEVEL = np.uint64(0x8CB92BA72F3D8DD7)
_K_STREAM = np.uint64(0xF1357AEA2E62A9C5)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(z: U64) -> U64:
    """splitmix64 finaliser: a bijection of uint64 with full avalanche."""
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def uniform(
    seed: U64,
    step: U64,
    tree: U64,
    stream: int,
    level: U64 | None = None,
) -> npt.NDArray[np.float64]:
    """Uniform draws in the open interval (0, 1), one per element of the broadcast inputs."""
    with np.errstate(over="ignore"):
        key = _mix(seed) ^ (step * _K_STEP) ^ (tree * _K_TREE) ^ (np.uint64(stream) * _K_STREAM)
        if level is not None:
            key = key ^ _mix(level * _K_LEVEL)
        bits = _mix(key) >> _S11
    return (bits.astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)
