"""Latency samples with their hops: parsed from the notifier's log, summarised per hop.

A sample is one alarm's first notification (raised or escalated): the notifier logs
`notification.sample` with every timestamp the anomaly carried along its way. Its hops, in order:

    sensor_to_broker     ts (or the receipt time for a skewed clock) -> IoT stand-in receipt
    broker_to_ingest     IoT receipt -> ingest decided it (rule's PutRecords, KCL poll, ingest)
    ingest_to_detector   ingest -> detector decided it (Kinesis put, KCL poll, scoring)
    detector_to_notifier detector -> notifier received the SQS message (send, long poll)
    notifier_to_shadow   SQS receipt -> shadow written (store, publish, UpdateThingShadow)

The hops add up to the sample's end-to-end latency. The hop that made a slow sample slow is the
one furthest above its own median (a broker hop of 900 ms where 300 is usual, not a shadow hop of
120 where 100 is).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HOPS", "Sample", "hop_stats", "read_samples", "slowest", "windows"]

HOPS = (
    "sensor_to_broker",
    "broker_to_ingest",
    "ingest_to_detector",
    "detector_to_notifier",
    "notifier_to_shadow",
)


@dataclass(frozen=True, slots=True)
class Sample:
    train: str
    alert_key: str
    taken_ms: int
    shadow_ms: int
    hops: dict[str, float]

    @property
    def total_ms(self) -> float:
        return float(self.shadow_ms - self.taken_ms)


def _sample(line: dict[str, Any]) -> Sample | None:
    try:
        t = [int(line[k]) for k in ("taken_ms", "broker_ms", "ingested_ms", "detected_ms",
                                     "queue_received_ms", "shadow_ms")]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(t):
        return None  # a hop's time is missing (an anomaly from before the stamps existed)
    return Sample(
        str(line.get("train", "")),
        str(line.get("alert_key", "")),
        t[0],
        t[-1],
        {hop: float(b - a) for hop, a, b in zip(HOPS, t[:-1], t[1:], strict=True)},
    )


def read_samples(log: Path, prefix: str = "", since_ms: int = 0) -> list[Sample]:
    """The samples of trains named `prefix...` taken at or after `since_ms`, in log order."""
    found: list[Sample] = []
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return found
    for raw in lines:
        if '"notification.sample"' not in raw:
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        sample = _sample(line)
        if sample and sample.train.startswith(prefix) and sample.taken_ms >= since_ms:
            found.append(sample)
    return found


def _pct(values: Iterable[float], q: float) -> float | None:
    arr = list(values)
    return round(float(np.percentile(arr, q)), 1) if arr else None


def hop_stats(samples: list[Sample]) -> dict[str, dict[str, float | None]]:
    """p50/p95/p99/max per hop and for the whole (`total`)."""
    series = {hop: [s.hops[hop] for s in samples] for hop in HOPS}
    series["total"] = [s.total_ms for s in samples]
    return {
        name: {
            "p50_ms": _pct(values, 50),
            "p95_ms": _pct(values, 95),
            "p99_ms": _pct(values, 99),
            "max_ms": round(max(values), 1) if values else None,
        }
        for name, values in series.items()
    }


def slowest(samples: list[Sample], n: int = 10) -> list[dict[str, Any]]:
    """The `n` slowest samples, each with the hop furthest above that hop's median."""
    medians = {hop: float(np.median([s.hops[hop] for s in samples])) for hop in HOPS} \
        if samples else {}
    out = []
    for s in sorted(samples, key=lambda x: x.total_ms, reverse=True)[:n]:
        excess = {hop: s.hops[hop] - medians[hop] for hop in HOPS}
        hop = max(excess, key=excess.__getitem__)
        out.append({
            "total_ms": s.total_ms,
            "hop": hop,
            "hop_ms": s.hops[hop],
            "hop_median_ms": round(medians[hop], 1),
            "train": s.train,
            "alert_key": s.alert_key,
            "taken_ms": s.taken_ms,
        })
    return out


def windows(samples: list[Sample], start_ms: int, width_s: float) -> list[dict[str, Any]]:
    """p99 (and n) per window of `width_s` seconds of sensor time from `start_ms`."""
    width = int(width_s * 1000)
    by: dict[int, list[float]] = {}
    for s in samples:
        by.setdefault((s.taken_ms - start_ms) // width, []).append(s.total_ms)
    return [
        {"from_s": k * width_s, "samples": len(v), "p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99),
         "max_ms": round(max(v), 1)}
        for k, v in sorted(by.items())
    ]
