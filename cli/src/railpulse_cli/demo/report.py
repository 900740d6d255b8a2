"""The demo's closing report, from where the data really ended up.

Frames generated come from the trains' own spools (their sequence counters), frames collected from
ingest's metrics, frames archived from the Parquet lake itself (DuckDB over S3); detection is
scored against the fleet simulator's ground truth; latency is what `make bench-latency` measures:
one sample per alarm's first notification (raised, or escalated: from the frame that raised or
escalated it; a re-assertion is no sample), sensor time (the IoT receipt when a train clock is
skewed) to shadow written, split into its hops by the timestamps the anomaly carried (the
notifier's `notification.sample` log lines, `samples.py`); every row has the same samples, n.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from railpulse_cli.demo.emf import MetricsTail
from railpulse_cli.demo.samples import HOPS, read_samples

__all__ = ["Report", "collect", "latency_table", "spool_counters"]

# Faults the detector is expected to find (a link outage is not a fault of the train).
NOT_A_FAULT = frozenset({"link_outage"})
DETECTION_WINDOW_MS = 10 * 60 * 1000


@dataclass
class Detection:
    train: str
    fault: str
    channel: str | None
    start_ms: int
    delay_s: float | None = None
    alert_key: str | None = None


@dataclass
class Report:
    generated: int = 0
    still_spooled: int = 0
    evicted: int = 0
    collected: int = 0
    rejected: int = 0
    archived: int = 0
    missing: int = 0
    detections: list[Detection] = field(default_factory=list)
    false_alerts: list[str] = field(default_factory=list)
    alarms: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    sample: str = ""
    lake: str = ""
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = ["", "=" * 78, "railpulse demo report", "=" * 78]
        out += [
            f"frames generated      {self.generated:8d}   (the trains' sequence counters)",
            f"frames collected      {self.collected:8d}   (forwarded by ingest; {self.rejected} rejected)",
            f"frames archived       {self.archived:8d}   (distinct train/seq in the lake)",
            f"still on the trains   {self.still_spooled:8d}   (spooled, not yet acknowledged)",
            f"evicted on the trains {self.evicted:8d}",
            f"in neither place      {self.missing:8d}"
            + ("" if self.missing == 0 else "   (see notes)"),
        ]
        found = [d for d in self.detections if d.delay_s is not None]
        out += [
            "",
            f"faults detected: {len(found)} of {len(self.detections)}"
            + (f" (recall {len(found) / len(self.detections):.0%})" if self.detections else ""),
        ]
        for d in self.detections:
            status = (
                f"after {d.delay_s:6.1f} s as {d.alert_key}" if d.delay_s is not None else "missed"
            )
            out.append(f"  {d.train:10s} {d.fault:20s} {d.channel or '-':22s} {status}")
        out.append(
            f"false alerts (trains without a fault): {len(self.false_alerts)}"
            + (f": {', '.join(self.false_alerts[:8])}" if self.false_alerts else "")
        )
        out += [
            "",
            "alarms: " + (", ".join(f"{k} {v}" for k, v in sorted(self.alarms.items())) or "none"),
        ]
        out += ["", "latency (ms), per alarm's first notification     p50      p95      p99"
                "      max        n"]
        for name, values in self.latency_ms.items():
            if values:
                p50, p95, p99 = np.percentile(values, [50, 95, 99])
                out.append(f"  {name:45s} {p50:7.0f}  {p95:7.0f}  {p99:7.0f}  {max(values):7.0f}"
                           f"  {len(values):7d}")
            else:
                out.append(f"  {name:45s} {'-':>7s}  {'-':>7s}  {'-':>7s}  {'-':>7s}        0")
        out += ["", f"where the data lies: {self.lake}", "", "sample query:", self.sample]
        if self.notes:
            out += ["", "notes:", *(f"  - {n}" for n in self.notes)]
        return "\n".join(out)


def spool_counters(spool_dir: Path) -> dict[str, tuple[int, int, int]]:
    """Per train: (next sequence number, frames still spooled, frames evicted)."""
    from railpulse_edge.spool import read_stats

    counters = {}
    for path in sorted(spool_dir.glob("*.db")):
        stats = read_stats(path)
        counters[path.stem] = (stats.next_seq, stats.pending, stats.evicted)
    return counters


_HOP_LABELS = {
    "sensor_to_broker": "sensor -> broker (IoT receipt)",
    "broker_to_ingest": "broker -> ingest",
    "ingest_to_detector": "ingest -> detector",
    "detector_to_notifier": "detector -> notifier (SQS)",
    "notifier_to_shadow": "notifier -> shadow",
}


def latency_table(log: Path, trains: set[str], since_ms: int) -> dict[str, list[float]]:
    """Per hop and end to end, the samples of `trains` since `since_ms` (one per alarm's first
    notification), in ms."""
    samples = [s for s in read_samples(log, since_ms=since_ms) if s.train in trains]
    table = {_HOP_LABELS[hop]: [s.hops[hop] for s in samples] for hop in HOPS}
    table["sensor -> shadow (end to end)"] = [s.total_ms for s in samples]
    return table


def _missing(
    env: dict[str, str],
    spool_dir: Path,
    before: dict[str, tuple[int, int, int]],
    after: dict[str, tuple[int, int, int]],
    since_ms: int,
) -> int:
    """Frames of this run (per train: its sequence numbers since the start) that are neither in
    the lake nor still spooled on the train (evicted frames are counted apart)."""
    from railpulse_edge.spool import pending_seqs

    con = _lake(env)
    archived: dict[str, set[int]] = {}
    for train, seq in con.execute(
        "SELECT DISTINCT train, seq FROM telemetry WHERE train IN (SELECT unnest(?)) "
        "AND epoch_ms(ts) >= ?",
        [sorted(after), since_ms - 60_000],
    ).fetchall():
        archived.setdefault(train, set()).add(int(seq))
    missing = 0
    for train, (next_seq, _, evicted) in after.items():
        start = before.get(train, (0, 0, 0))[0]
        present = archived.get(train, set()) | pending_seqs(spool_dir / f"{train}.db")
        missing += sum(1 for seq in range(start, next_seq) if seq not in present)
        missing -= evicted - before.get(train, (0, 0, 0))[2]
    return max(missing, 0)


def _lake(env: dict[str, str]) -> Any:
    from railpulse_archiver.query import connect_lake
    from railpulse_devstack.env import s3_endpoint

    return connect_lake(
        f"s3://{env.get('RAILPULSE_BUCKET_LAKE', 'railpulse-lake')}",
        endpoint=s3_endpoint(env),
        region=env.get("AWS_REGION", "us-east-1"),
    )


def _archived(env: dict[str, str], trains: list[str], since_ms: int) -> int:
    con = _lake(env)
    row = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT train, seq FROM telemetry "
        "WHERE train IN (SELECT unnest(?)) AND epoch_ms(ts) >= ?)",
        [trains, since_ms],
    ).fetchone()
    return int(row[0]) if row else 0


def collect(
    *,
    run_dir: Path,
    spool_dir: Path,
    before: dict[str, tuple[int, int, int]],
    env: dict[str, str],
    tail: MetricsTail,
    since_ms: int,
    drain_timeout_s: float,
    say: Callable[[str], None],
) -> Report:
    report = Report(
        lake=f"s3://{env.get('RAILPULSE_BUCKET_LAKE', 'railpulse-lake')}/"
        "{telemetry,alerts,alarms}/dt=YYYY-MM-DD/[hour=HH/] (Parquet, zstd)"
    )
    after = spool_counters(spool_dir)
    trains = sorted(after)
    for train, (next_seq, pending, evicted) in after.items():
        start_seq, _, start_evicted = before.get(train, (0, 0, 0))
        report.generated += next_seq - start_seq
        report.still_spooled += pending
        report.evicted += evicted - start_evicted
    expected = report.generated - report.still_spooled - report.evicted

    # Drain: wait until the lake holds every frame that left the trains, or the deadline.
    deadline = time.monotonic() + drain_timeout_s
    while True:
        tail.poll()
        report.archived = _archived(env, trains, since_ms) if trains else 0
        if report.archived >= expected or time.monotonic() > deadline:
            break
        say(f"    archived {report.archived} of {expected} ...")
        time.sleep(5)
    # A frame can be both archived and still spooled (its PUBACK was lost when the fleet
    # stopped; the train will send it again and ingest will drop the duplicate), so what is
    # missing is what is in neither place.
    report.missing = _missing(env, spool_dir, before, after, since_ms)
    if report.missing:
        report.notes.append(
            f"{report.missing} frames are neither in the lake nor on a train after "
            f"{drain_timeout_s:.0f} s of draining; the services checkpoint only what is written, "
            "so they are processed on the next start"
        )
    report.collected = int(tail.total("ingest", "RecordsForwarded"))
    report.rejected = int(tail.total("ingest", "RecordsRejected"))

    con = _lake(env)
    alerts = con.execute(
        "SELECT train, alert_key, top_channel, epoch_ms(ts), received_ms, ingested_ms, detected_ms "
        "FROM alerts WHERE epoch_ms(ts) >= ? ORDER BY ts",
        [since_ms],
    ).fetchall()
    truth = (
        [
            json.loads(line)
            for line in (run_dir / "ground_truth.jsonl").read_text().splitlines()
            if line.strip()
        ]
        if (run_dir / "ground_truth.jsonl").exists()
        else []
    )
    faulted = {t["train"] for t in truth}
    for t in truth:
        if "start_ms" not in t or t["fault"] in NOT_A_FAULT:
            continue
        detection = Detection(t["train"], t["fault"], t.get("channel"), int(t["start_ms"]))
        for train, key, top, ts, _, _, detected in alerts:
            if train != t["train"] or not (
                t["start_ms"] - 1000 <= ts <= t["start_ms"] + DETECTION_WINDOW_MS
            ):
                continue
            channel = detection.channel
            related = channel is None or channel in (key or "") or channel == top
            if related or detection.alert_key is None:
                detection.delay_s = ((detected or ts) - detection.start_ms) / 1000
                detection.alert_key = key
                if related:
                    break
        report.detections.append(detection)
    report.false_alerts = sorted(
        {f"{train}:{key}" for train, key, *_ in alerts if train not in faulted}
    )
    report.latency_ms = latency_table(run_dir / "logs" / "notifier.log", set(trains), since_ms)
    for state, count in con.execute(
        "SELECT state, count(*) FROM alarms WHERE epoch_ms(changed_at) >= ? GROUP BY state",
        [since_ms],
    ).fetchall():
        report.alarms[str(state)] = int(count)

    from railpulse_archiver.query import format_table, run_sql

    sql = (
        "SELECT train, channel, count(*) AS readings, round(avg(value), 2) AS mean, "
        "round(max(value), 2) AS max FROM telemetry WHERE channel LIKE 'bearing_temp_%' "
        f"AND epoch_ms(ts) >= {since_ms} GROUP BY ALL ORDER BY max DESC LIMIT 5"
    )
    report.sample = f'  $ railpulse query "{sql}"\n' + format_table(run_sql(con, sql))
    return report
