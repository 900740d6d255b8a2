"""Archiver benchmark: write throughput, Parquet size against the JSON that arrived, pruning.

A simulated week of 50 trains (33 channels each, one frame per train per minute — a reduced rate so
generation stays within minutes on 2 cores; 1 Hz would be 60x the rows with the same per-row
costs) goes through the real write path (`ShardArchive`: decode, buffer, build Arrow, sort, zstd
Parquet, manifest) into a lake on the **local filesystem** laid out exactly like the S3 bucket,
4 shards, Firehose-like hints of 8 MiB. Then DuckDB runs one engineer's query — hourly channel
statistics of one train for one day — twice in the same run: over the lake's views with partition
pruning, and as a full scan (the same SQL with DuckDB's filter pushdown disabled, so every object is
read and filtered afterwards).

Reported (last stdout line, one JSON object):
- `rows_per_s_per_core`: readings written per CPU-second of the archiving process (process CPU
  time, so other tenants of the machine do not distort it);
- `bytes_ratio_vs_json`: Parquet bytes / JSON bytes of the records as they arrived on Kinesis;
- `pruned_speedup`: full-scan time / pruned time (medians of 3 runs each).

Then compaction: a day of the same fleet archived as the deployment flushes it (every 30 s of
stream time per shard, by the archive's own age trigger on a clock that follows the records), so
every hour partition fills with ~120 small objects per shard (a frame per train every 30 s, so
each 30-s flush has records); the same one-train-one-day query
runs before and after `railpulse compact` of that day (`compaction.compact`, 128 MB files):
- `objects_per_hour_partition_before` / `_after`: live objects in the fullest hour partition;
- `query_speedup_after_compaction`: query time before / after (medians of 3 runs each);
- `compaction_s`: wall time of compacting the day, and the rows seen (must be equal) both times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from railpulse_archiver.archive import BufferHints, ShardArchive
from railpulse_archiver.compaction import compact
from railpulse_archiver.generations import list_lake
from railpulse_archiver.query import connect_lake, files_scanned, run_sql
from railpulse_archiver.simulate import fleet_records
from railpulse_archiver.store import LocalStore
from railpulse_shared.batch import StreamRecord
from railpulse_shared.log import configure_logging

START_MS = 1_780_012_800_000  # 2026-05-29T00:00:00Z
BATCH = 1000  # the KCL's maxRecords


def log(message: str) -> None:
    print(f"[bench-archiver] {message}", file=sys.stderr, flush=True)


async def write_lake(args: argparse.Namespace, root: Path) -> dict[str, float]:
    store = LocalStore(root)
    archives: dict[str, ShardArchive] = {}
    pending: dict[str, list[StreamRecord]] = defaultdict(list)
    hints = BufferHints(
        max_records=1_000_000, max_bytes=args.buffer_mib * 1024 * 1024, max_age_s=1e9
    )
    cpu = 0.0
    frames = 0
    started = time.monotonic()

    async def offer(shard: str, batch: list[StreamRecord]) -> None:
        nonlocal cpu
        archive = archives.get(shard)
        if archive is None:
            archive = archives[shard] = ShardArchive(
                store, stream="telemetry", shard=shard, hints=hints
            )
            await archive.open()
        t0 = time.process_time()
        await archive.offer(batch)
        cpu += time.process_time() - t0

    for record in fleet_records(
        trains=args.trains,
        start_ms=START_MS,
        duration_s=int(args.days * 86400),
        period_s=args.period_s,
        shards=args.shards,
    ):
        batch = pending[record.shard_id]
        batch.append(record)
        if len(batch) >= BATCH:
            await offer(record.shard_id, batch)
            pending[record.shard_id] = []
        frames += 1
        if frames % 100_000 == 0:
            log(f"{frames} frames through the archiver ({time.monotonic() - started:.0f} s)")
    for shard, batch in pending.items():
        if batch:
            await offer(shard, batch)
    t0 = time.process_time()
    for archive in archives.values():
        await archive.flush()
    cpu += time.process_time() - t0
    rows = sum(a.stats.rows for a in archives.values())
    return {
        "frames": frames,
        "rows": rows,
        "objects": sum(a.stats.objects for a in archives.values()),
        "bytes_in": sum(a.stats.bytes_in for a in archives.values()),
        "bytes_out": sum(a.stats.bytes_out for a in archives.values()),
        "cpu_s": cpu,
        "wall_s": time.monotonic() - started,
    }


def timed(con: object, sql: str, runs: int = 3) -> tuple[float, int]:
    times = []
    rows = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = run_sql(con, sql).num_rows  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rows


def query_bench(root: Path, train: str, day: str) -> dict[str, float]:
    sql = (
        "SELECT channel, date_trunc('hour', ts) AS hour, count(*) AS n, avg(value) AS avg, "
        "min(value) AS min, max(value) AS max FROM telemetry "
        f"WHERE train = '{train}' AND dt = '{day}' GROUP BY ALL ORDER BY ALL"
    )
    pruned = connect_lake(str(root))
    scan = files_scanned(pruned, sql)
    log(f"pruned query reads {scan.files_read} of {scan.files_total} objects")
    pruned_s, pruned_rows = timed(pruned, sql)
    full = connect_lake(str(root))
    full.execute("SET disabled_optimizers = 'filter_pushdown'")
    full_scan = files_scanned(full, sql)
    full_s, full_rows = timed(full, sql)
    log(f"full scan reads {full_scan.files_read} of {full_scan.files_total} objects")
    if pruned_rows != full_rows:
        raise SystemExit(f"pruned and full scan disagree: {pruned_rows} vs {full_rows} rows")
    log(
        f"pruned {pruned_s * 1000:.1f} ms, full scan {full_s * 1000:.1f} ms, {pruned_rows} result rows"
    )
    return {
        "pruned_ms": pruned_s * 1000,
        "full_scan_ms": full_s * 1000,
        "pruned_files": scan.files_read,
        "total_files": scan.files_total,
    }


async def write_flushed_every(root: Path, args: argparse.Namespace, age_s: float) -> int:
    """A day of the fleet, flushed every `age_s` of stream time per shard (record by record, so
    the age trigger fires as it would on a live stream); return the readings written."""
    store = LocalStore(root)
    archives: dict[str, ShardArchive] = {}
    now = [0.0]
    for record in fleet_records(
        trains=args.trains,
        start_ms=START_MS,
        duration_s=86400,
        period_s=age_s,  # the fleet's frames come in bursts: one per flush interval
        shards=args.shards,
    ):
        now[0] = record.arrival_ms / 1000
        archive = archives.get(record.shard_id)
        if archive is None:
            archive = archives[record.shard_id] = ShardArchive(
                store,
                stream="telemetry",
                shard=record.shard_id,
                hints=BufferHints(max_records=1_000_000, max_bytes=1 << 40, max_age_s=age_s),
                clock=lambda: now[0],
            )
            await archive.open()
        await archive.offer([record])
    for archive in archives.values():
        await archive.flush()
    return sum(a.stats.rows for a in archives.values())


def objects_per_hour_partition(root: Path) -> int:
    listing = list_lake(connect_lake(str(root)), str(root))
    per: dict[str, int] = defaultdict(int)
    for key in listing.files("telemetry"):
        per[key.split("/dt=", 1)[1].split("/")[1]] += 1
    return max(per.values())


def compaction_bench(args: argparse.Namespace, train: str) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-compaction-"))
    try:
        readings = asyncio.run(write_flushed_every(root, args, 30.0))
        day = time.strftime("%Y-%m-%d", time.gmtime(START_MS / 1000))
        sql = (
            "SELECT channel, date_trunc('hour', ts) AS hour, count(*) AS n, avg(value) AS avg "
            f"FROM telemetry WHERE train = '{train}' AND dt = '{day}' GROUP BY ALL ORDER BY ALL"
        )
        count = "SELECT count(*) FROM telemetry"
        before_objects = objects_per_hour_partition(root)
        con = connect_lake(str(root))
        before_s, before_rows = timed(con, sql)
        before_count = run_sql(con, count).column(0)[0].as_py()
        log(
            f"30-s flushes: {before_objects} objects in the fullest hour, query {before_s * 1000:.0f} ms"
        )
        t0 = time.monotonic()
        asyncio.run(compact(connect_lake(str(root)), LocalStore(root), str(root), day))
        compaction_s = time.monotonic() - t0
        after_objects = objects_per_hour_partition(root)
        con = connect_lake(str(root))
        after_s, after_rows = timed(con, sql)
        after_count = run_sql(con, count).column(0)[0].as_py()
        log(
            f"compacted in {compaction_s:.1f} s: {after_objects} objects, query {after_s * 1000:.0f} ms"
        )
        if not (before_rows == after_rows and before_count == after_count == readings):
            raise SystemExit(
                f"compaction changed the data: {before_count} -> {after_count} of {readings} rows"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "objects_per_hour_partition_before": before_objects,
        "objects_per_hour_partition_after": after_objects,
        "query_before_compaction_ms": round(before_s * 1000, 1),
        "query_after_compaction_ms": round(after_s * 1000, 1),
        "query_speedup_after_compaction": round(before_s / after_s, 1),
        "compaction_s": round(compaction_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trains", type=int, default=50)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument(
        "--period-s", type=float, default=60.0, help="seconds between a train's frames"
    )
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--buffer-mib", type=float, default=8.0, help="flush size hint per shard")
    parser.add_argument(
        "--lake", type=Path, help="write the lake here and keep it (default: a temp dir)"
    )
    args = parser.parse_args()
    configure_logging("warning")  # stdout carries only the result line

    root = args.lake or Path(tempfile.mkdtemp(prefix="bench-archiver-"))
    log(f"{args.trains} trains x {args.days} days, a frame per {args.period_s:g} s, lake in {root}")
    try:
        w = asyncio.run(write_lake(args, root))
        log(
            f"wrote {w['rows']:.0f} readings of {w['frames']:.0f} frames into {w['objects']:.0f} objects "
            f"in {w['wall_s']:.0f} s wall, {w['cpu_s']:.1f} s CPU in the archiver"
        )
        ratio = w["bytes_out"] / w["bytes_in"]
        log(
            f"JSON {w['bytes_in'] / w['rows']:.1f} B/reading, Parquet {w['bytes_out'] / w['rows']:.2f} B/reading"
        )
        day = time.strftime(
            "%Y-%m-%d",
            time.gmtime(START_MS / 1000 + 3 * 86400 if args.days > 3 else START_MS / 1000),
        )
        train = "train-017" if args.trains >= 17 else "train-001"
        q = query_bench(root, train, day)
    finally:
        if args.lake is None:
            shutil.rmtree(root, ignore_errors=True)
    c = compaction_bench(args, train)
    result = {
        "rows_per_s_per_core": round(w["rows"] / w["cpu_s"]),
        "bytes_ratio_vs_json": round(ratio, 4),
        "pruned_speedup": round(q["full_scan_ms"] / q["pruned_ms"], 1),
        "rows": int(w["rows"]),
        "frames": int(w["frames"]),
        "objects": int(w["objects"]),
        "parquet_bytes_per_reading": round(w["bytes_out"] / w["rows"], 3),
        "json_bytes_per_reading": round(w["bytes_in"] / w["rows"], 2),
        "pruned_ms": round(q["pruned_ms"], 1),
        "full_scan_ms": round(q["full_scan_ms"], 1),
        "objects_read_pruned": q["pruned_files"],
        "objects_total": q["total_files"],
        "lake": "local filesystem (same layout as S3)",
        "frame_period_s": args.period_s,
        **c,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
