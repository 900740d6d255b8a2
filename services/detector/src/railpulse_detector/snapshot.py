"""Versioned binary snapshots of a :class:`FleetDetector`.

Layout: ``MAGIC`` (8 bytes) | format version (uint16 LE) | header length (uint32 LE)
| header (JSON: config, array names) | ``np.savez`` archive of every state array.
A restored detector continues bit for bit: all randomness is derived from the
stored seeds and step counters, so no generator state is needed.
Readers reject unknown versions rather than guess.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from typing import Any

import numpy as np

from railpulse_detector.detector import DetectorConfig, FleetDetector
from railpulse_detector.forest import RandomCutForest
from railpulse_detector.normalise import OnlineNormaliser
from railpulse_detector.threshold import ThresholdConfig, Thresholder

__all__ = ["FORMAT_VERSION", "MAGIC", "SnapshotError", "dumps", "loads"]

MAGIC = b"RPRCF\x00\x00\x01"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHI")


class SnapshotError(ValueError):
    """The bytes are not a snapshot this reader understands."""


def _parts(det: FleetDetector) -> dict[str, Any]:
    return {
        "forest": det.forest,
        "normaliser": det.normaliser,
        "thresholder": det.thresholder,
    }


def _fields(name: str) -> tuple[str, ...]:
    return {
        "forest": RandomCutForest.STATE_FIELDS,
        "normaliser": OnlineNormaliser.STATE_FIELDS,
        "thresholder": Thresholder.STATE_FIELDS,
    }[name]


def dumps(det: FleetDetector) -> bytes:
    """Serialise the detector's configuration and full state."""
    arrays: dict[str, np.ndarray[Any, Any]] = {"history": det.history}
    for part, obj in _parts(det).items():
        for f in _fields(part):
            arrays[f"{part}.{f}"] = getattr(obj, f)
    header = json.dumps(
        {"config": dataclasses.asdict(det.config), "arrays": sorted(arrays)}
    ).encode()
    buf = io.BytesIO()
    buf.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)))
    buf.write(header)
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def loads(data: bytes) -> FleetDetector:
    """Rebuild a detector from :func:`dumps` output."""
    if len(data) < _PREFIX.size:
        raise SnapshotError("truncated snapshot")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError("not a railpulse detector snapshot")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"unsupported snapshot format version {version}")
    header = json.loads(data[_PREFIX.size : _PREFIX.size + hlen])
    cfg_raw = dict(header["config"])
    cfg = DetectorConfig(**{**cfg_raw, "threshold": ThresholdConfig(**cfg_raw["threshold"])})
    with np.load(io.BytesIO(data[_PREFIX.size + hlen :]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if sorted(arrays) != header["arrays"]:
        raise SnapshotError("snapshot arrays do not match its header")
    det = FleetDetector(cfg, arrays["forest.seeds"])
    det.history = arrays["history"]
    for part, obj in _parts(det).items():
        for f in _fields(part):
            current = getattr(obj, f)
            value = arrays[f"{part}.{f}"]
            if value.dtype != current.dtype or value.shape != current.shape:
                raise SnapshotError(f"{part}.{f}: shape or dtype differs from the config")
            setattr(obj, f, value.copy())
    return det
