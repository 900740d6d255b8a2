"""Versioned binary snapshots of a :class:`FleetDetector`.

Layout: ``MAGIC`` (8 bytes) | format version (uint16 LE) | header length (uint32 LE)
| header (JSON: config, array names) | ``np.savez`` archive of every state array.
A restored detector continues bit for bit: all randomness is derived from the
stored seeds and step counters, so no generator state is needed.
Readers reject unknown versions rather than guess; version 1 (separate ``lo``/``hi``
boxes, parent links, no sentinel node) is upgraded on load, so a detector taking
over a shard from an older one resumes where it stopped.
"""

from __future__ import annotations

import copy
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

__all__ = ["FORMAT_VERSION", "MAGIC", "SnapshotError", "dumps", "frozen", "loads"]

MAGIC = b"RPRCF\x00\x00\x01"
FORMAT_VERSION = 3  # 2: fused boxes, per-tree sentinel node, no parent links; 3: likelihood state
_PREFIX = struct.Struct("<8sHI")
_Arrays = dict[str, np.ndarray[Any, Any]]


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


def frozen(det: FleetDetector, reuse: FleetDetector | None = None) -> FleetDetector:
    """A copy of `det` whose state arrays (all that `dumps` reads) are its own: a memcpy of each,
    so it is cheap to take between two batches and can be encoded on another thread.

    `reuse`, an earlier copy nobody reads any more, lends its arrays where shape and dtype still
    match: copying into memory already mapped avoids the page faults of fresh allocations, which
    can cost more than the copy itself."""

    def copied(old: Any, new: Any) -> Any:
        if isinstance(old, np.ndarray) and old.shape == new.shape and old.dtype == new.dtype:
            np.copyto(old, new)
            return old
        return new.copy()

    twin = copy.copy(det)
    twin.history = copied(getattr(reuse, "history", None), det.history)
    for part, obj in _parts(det).items():
        part_twin = copy.copy(obj)
        spare = getattr(reuse, part, None)
        for f in _fields(part):
            setattr(part_twin, f, copied(getattr(spare, f, None), getattr(obj, f)))
        setattr(twin, part, part_twin)
    return twin


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
    if version not in (1, 2, FORMAT_VERSION):
        raise SnapshotError(f"unsupported snapshot format version {version}")
    header = json.loads(data[_PREFIX.size : _PREFIX.size + hlen])
    cfg_raw = dict(header["config"])
    try:
        threshold = ThresholdConfig.from_saved(cfg_raw["threshold"])
    except ValueError as exc:
        raise SnapshotError(str(exc)) from exc
    cfg = DetectorConfig(**{**cfg_raw, "threshold": threshold})
    with np.load(io.BytesIO(data[_PREFIX.size + hlen :]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if sorted(arrays) != header["arrays"]:
        raise SnapshotError("snapshot arrays do not match its header")
    if version == 1:
        arrays = _upgrade_v1(arrays, cfg)
    det = FleetDetector(cfg, arrays["forest.seeds"])
    det.history = arrays["history"]
    for part, obj in _parts(det).items():
        for f in _fields(part):
            current = getattr(obj, f)
            if f"{part}.{f}" not in arrays and version < FORMAT_VERSION:
                continue  # state added since that snapshot was written starts fresh
            value = arrays[f"{part}.{f}"]
            if value.dtype != current.dtype or value.shape != current.shape:
                raise SnapshotError(f"{part}.{f}: shape or dtype differs from the config")
            setattr(obj, f, value.copy())
    return det


def _upgrade_v1(arrays: _Arrays, cfg: DetectorConfig) -> _Arrays:
    """Version 1 forest arrays in the version 2 layout (same trees, same future scores).

    Per tree, v1 had internal nodes ``0..S-1`` and leaves ``S..2S``; v2 puts the
    sentinel at ``S`` and the leaves at ``S+1..2S+1`` (leaf points keep their rows).
    """
    s = cfg.sample_size
    try:
        lo, hi, cut_dim, cut_val, child, mass = (
            arrays.pop(f"forest.{k}") for k in ("lo", "hi", "cut_dim", "cut_val", "child", "mass")
        )
        del arrays["forest.parent"]
    except KeyError as exc:
        raise SnapshotError(f"version 1 snapshot without {exc}") from exc
    g = lo.shape[0] // s
    fresh = RandomCutForest(cfg.forest, np.zeros(g // cfg.num_trees, np.uint64))

    def leaf_ids(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.where(a >= s, a + 1, a).astype(a.dtype)

    def internal(new: np.ndarray[Any, Any], old: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        shaped = new.reshape(g, s + 1, -1)
        shaped[:, :s] = old.reshape(g, s, -1)
        return new

    arrays["forest.box"] = internal(fresh.box, np.concatenate([lo, hi], axis=1))
    arrays["forest.cut_dim"] = internal(fresh.cut_dim, cut_dim)
    arrays["forest.cut_val"] = internal(fresh.cut_val, cut_val)
    arrays["forest.child"] = internal(fresh.child, leaf_ids(child))
    new_mass = np.zeros((g, 2 * s + 2), mass.dtype)
    old_mass = mass.reshape(g, 2 * s + 1)
    new_mass[:, :s], new_mass[:, s + 1 :] = old_mass[:, :s], old_mass[:, s:]
    arrays["forest.mass"] = new_mass.reshape(-1)
    for k in ("root", "leaf_free", "slot_leaf"):
        arrays[f"forest.{k}"] = leaf_ids(arrays[f"forest.{k}"])
    return arrays
