"""Sensor-to-shadow latency through the whole local stack: a fleet at 1 Hz, every service a process.

    make bench-latency                                   # 50 trains, >= 1,000 samples, 9 min
    make bench-latency BENCH_ARGS="--trains 200"
    make bench-latency BENCH_ARGS="--trains 100 --duration 3600"   # the soak

1. the local stack (`railpulse stack up`, on the ports and state dir of the `RAILPULSE_*` env,
   see `railpulse_devstack.config`), then ingest, detector, notifier and archiver started as
   `railpulse demo` starts them (`_service_env`: each its own process and environment); the fleet
   starts only once every KCL consumer has renewed its leases after this start;
2. `railpulse-fleet --trains N` at 1 Hz with a generated scenario: from `--first-spike-s` on, every
   `--spike-every-s` one train's bearing temperature jumps past the critical limit for one sample,
   cycling over every (train, channel); the notifier clears a quiet alarm after
   `--clear-after-s`, so the next spike on that pair raises it again: each spike is one sample;
3. a sample is an alarm's first notification (raised or escalated), from the notifier's
   `notification.sample` log line, which carries every hop's time (`bench/_samples.py`): per hop
   p50/p95/p99/max, and for the 10 slowest samples the hop that made each slow; the detector's
   and ingest's KCL batch times and lag, the detector's snapshot times, from their EMF;
4. frames sent (the trains' spool sequence counters) against frames archived (distinct train/seq
   in the lake); frames still spooled on a train are not lost;
5. every service's resident memory (its whole process tree, the stack's components too) at
   `--rss-at-s` and at the end, and every minute split into the KCL's JVM and the service's own
   Python (`rss_series_mb`), and p99 per `--window-s` window: for the soak, a service whose
   memory grows with time rather than with the fleet is a defect;
6. the cores each of them, and the fleet, kept busy on average (`cpu_cores`): on a machine of
   few cores their sum against the cores there are says how much of the tail is queueing.

KCL settings (from `_service_env`, measured in docs/design.md): polling (`retrievalMode = POLLING`),
`idleTimeBetweenReadsInMillis` 200 for ingest and detector, 1000 for the archiver,
`shardSyncIntervalMillis` 1000; the archiver flushes every `--flush-s` seconds. Every daemon logs
its AWS requests (`RAILPULSE_KCL_LOG_REQUESTS`), and `kcl.get_records` times each shard's GetRecords
calls, the gaps between their results and the SDK's retries (`bench/_kcl_requests.py`).

Progress on stderr; the last stdout line is one JSON object (the keys of the first version kept;
`samples`, `hops`, `slowest`, `windows`, `rss_mb`, `services`, `cpu_cores` added).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._kcl_requests import get_records_stats
from bench._rss import stack_pids, tree_cpu_s, tree_rss_by_program, tree_rss_mb
from railpulse_cli.demo.emf import MetricsTail
from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_cli.demo.report import spool_counters
from railpulse_cli.demo.run import KCL_APPLICATIONS, _service_env
from railpulse_cli.demo.samples import hop_stats, read_samples, slowest, windows
from railpulse_cli.demo.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "detector", "notifier", "archiver")
KCL_IDLE_MS = {"ingest": 200, "detector": 200, "archiver": 1000}


def _log(msg: str) -> None:
    print(f"[bench-latency] {msg}", file=sys.stderr, flush=True)


def _scenario(path: Path, trains: int, first_s: float, every_s: float, until_s: float) -> int:
    """One single-sample bearing spike (+100 degC: 150-170 degC, past the 120 degC critical limit,
    inside the physical range) every `every_s`, cycling over every (train, channel): consecutive
    spikes on other trains, a pair again only after all the others."""
    lines = ["seed = 7", ""]
    k = 0
    while first_s + k * every_s < until_s:
        pair = k % (trains * 8)
        lines += [
            "[[fault]]",
            f"train = {pair % trains}",
            'kind = "spike"',
            f'channel = "bearing_temp_{pair // trains + 1}"',
            f"at_s = {first_s + k * every_s:.2f}",
            "magnitude = 100.0",
            "",
        ]
        k += 1
    path.write_text("\n".join(lines))
    return k


def _lake(env: dict[str, str]) -> Any:
    from railpulse_archiver.query import connect_lake
    from railpulse_devstack.env import s3_endpoint

    return connect_lake(f"s3://{env['RAILPULSE_BUCKET_LAKE']}", endpoint=s3_endpoint(env),
                        region=env["AWS_REGION"])


def _archived(env: dict[str, str], prefix: str, since_ms: int) -> int:
    row = _lake(env).execute(
        "SELECT count(*) FROM (SELECT DISTINCT train, seq FROM telemetry "
        "WHERE starts_with(train, ?) AND epoch_ms(ts) >= ?)", [prefix, since_ms]).fetchone()
    return int(row[0]) if row else 0


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _rss(supervisor_pids: dict[str, int], stack_run: Path) -> dict[str, float]:
    return {name: tree_rss_mb(pid) for name, pid in {**supervisor_pids,
                                                      **stack_pids(stack_run)}.items()}


def _cpu(trees: dict[str, int]) -> dict[str, float]:
    return {name: tree_cpu_s(pid) for name, pid in trees.items()}


def _rss_split(supervisor_pids: dict[str, int]) -> dict[str, dict[str, float]]:
    return {name: tree_rss_by_program(pid) for name, pid in supervisor_pids.items()}


def _emf_stats(tail: MetricsTail) -> dict[str, dict[str, float | None]]:
    """p50/p99/max of the EMF figures that explain a hop: KCL batch time and lag, snapshots."""
    wanted = {
        "ingest": ("BatchLatency", "MillisBehindLatest"),
        "detector": ("BatchLatency", "ScoringTime", "GcPauseTime", "MillisBehindLatest",
                     "SnapshotCopyTime", "SnapshotWriteTime"),
        "archiver": ("BatchLatency",),
    }
    out: dict[str, dict[str, float | None]] = {}
    for service, names in wanted.items():
        for name in names:
            values = list(tail.samples.get(service, {}).get(name, []))
            if values:
                out[f"{service}.{name}"] = {"n": len(values), "p50": _pct(values, 50),
                                            "p99": _pct(values, 99), "max": max(values)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.latency", description=__doc__.split("\n")[0])
    p.add_argument("--trains", type=int, default=50)
    p.add_argument("--duration-s", "--duration", type=float, default=540.0,
                   help="how long the fleet runs")
    p.add_argument("--first-spike-s", type=float, default=20.0)
    p.add_argument("--spike-every-s", type=float, default=0.5,
                   help="one spike this often; each raises one alarm (one condition, one alarm), "
                   "one sample: 0.5 s gives 1,000 in ~500 s. Much more often and the benchmark "
                   "measures how many alarms a second the notifier keeps up with")
    p.add_argument("--clear-after-s", type=float, default=20.0,
                   help="the notifier clears a quiet alarm after this, so a pair can raise again")
    p.add_argument("--flush-s", type=float, default=5.0, help="the archiver's buffer max age")
    p.add_argument("--window-s", type=float, default=600.0, help="p99 per window this long")
    p.add_argument("--rss-at-s", type=float, default=300.0,
                   help="resident memory of every service this long into the run (and at the end)")
    p.add_argument("--lease-timeout-s", type=float, default=180.0)
    p.add_argument("--drain-timeout-s", type=float, default=60.0)
    p.add_argument("--prefix", default="lat-", help="train name prefix (own spools and names)")
    args = p.parse_args(argv)

    from railpulse_devstack import stack as devstack
    from railpulse_devstack.config import load_config
    from railpulse_devstack.env import stack_env

    began = time.monotonic()
    config = load_config()
    devstack.up(config)
    env = stack_env(config)
    os.environ.update(env)
    _log(f"stack ready in {time.monotonic() - began:.1f} s (state {config.state_dir}, "
         f"moto {config.moto_port}); load average {os.getloadavg()}")

    run_dir = REPO / ".local" / "bench" / time.strftime("latency-%Y%m%dT%H%M%S")
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    spool_dir = REPO / ".local" / "bench" / "latency-spools"  # sequence numbers never restart
    scenario = run_dir / "scenario.toml"
    spikes = _scenario(scenario, args.trains, args.first_spike_s, args.spike_every_s,
                       args.duration_s - 5)
    tail = MetricsTail({n: run_dir / "metrics" / f"{n}.emf" for n in SERVICES})
    bin_dir = Path(sys.executable).parent
    result: dict[str, Any] = {}
    loads: list[tuple[float, float]] = []
    with Supervisor(run_dir / "logs") as supervisor:
        before = lease_counters(env, KCL_APPLICATIONS)
        pids: dict[str, int] = {}
        for name in SERVICES:
            service_env = _service_env(env, name, run_dir)
            service_env["RAILPULSE_KCL_LOG_REQUESTS"] = "true"  # GetRecords timed (_kcl_requests)
            if name == "archiver":
                service_env["RAILPULSE_BUFFER_MAX_AGE_S"] = str(args.flush_s)
            if name == "notifier":
                service_env["RAILPULSE_CLEAR_AFTER_S"] = str(args.clear_after_s)
            proc = supervisor.start(name, [str(bin_dir / f"railpulse-{name}")], service_env)
            assert proc.popen is not None
            pids[name] = proc.popen.pid
        _log("services started; waiting for the KCL consumers to renew their leases ...")
        deadline = time.monotonic() + args.lease_timeout_s
        while not leases_renewed(env, KCL_APPLICATIONS, before):
            if supervisor.failed() or time.monotonic() > deadline:
                raise SystemExit(f"consumers not ready: failed={[x.name for x in supervisor.failed()]}")
            time.sleep(1)
        _log(f"consumers ready after {time.monotonic() - began:.0f} s")

        spools_before = spool_counters(spool_dir)
        since_ms = int(time.time() * 1000)
        fleet = supervisor.start("fleet", [
            str(bin_dir / "railpulse-fleet"), "--trains", str(args.trains), "--prefix", args.prefix,
            "--ensure-certs", "--scenario", str(scenario), "--ground-truth",
            str(run_dir / "ground_truth.jsonl"), "--spool-dir", str(spool_dir),
            "--duration-s", str(args.duration_s),
        ], _service_env(env, "fleet", run_dir))
        _log(f"fleet of {args.trains} trains at 1 Hz for {args.duration_s:.0f} s, {spikes} spikes")
        started = time.monotonic()
        cpu_pids = {**pids, **stack_pids(config.run_dir)}
        if fleet.popen is not None:
            cpu_pids["fleet"] = fleet.popen.pid
        cpu_before = _cpu(cpu_pids)
        cpu_seen = dict(cpu_before)  # the latest reading of each tree while it lived
        next_report = started + 10
        rss_early: dict[str, float] = {}
        # A trend, not two points: one transient (a snapshot's buffers, a JVM heap growing to its
        # -Xmx) must not read as growth, nor hide it.
        rss_series: list[dict[str, Any]] = []
        next_rss = started + 60
        notifier_log = run_dir / "logs" / "notifier.log"
        while fleet.alive:
            time.sleep(1)
            if not rss_early and time.monotonic() - started >= args.rss_at_s:
                rss_early = _rss(pids, config.run_dir)
                _log(f"resident memory at {args.rss_at_s:.0f} s: {rss_early}")
            if time.monotonic() >= next_rss:
                next_rss += 60
                rss_series.append({"t_s": round(time.monotonic() - started),
                                   **_rss_split(pids)})
            if time.monotonic() >= next_report:
                next_report += 10
                tail.poll()
                loads.append((round(time.monotonic() - started), os.getloadavg()[0]))
                cpu_seen.update((n, v) for n, v in _cpu(cpu_pids).items() if v)
                lat = [s.total_ms for s in read_samples(notifier_log, args.prefix, since_ms)]
                _log(f"[{time.monotonic() - started:4.0f}s] frames in "
                     f"{tail.total('ingest', 'RecordsForwarded'):6.0f} | scored "
                     f"{tail.total('detector', 'FramesScored'):6.0f} | samples "
                     f"{len(lat):4d} | p99 so far {_pct(lat, 99)} ms | load "
                     f"{loads[-1][1]:.2f}")
        cpu_seen.update((n, v) for n, v in _cpu(cpu_pids).items() if v)
        ran_s = time.monotonic() - started
        # Cores each tree kept busy on average (the fleet's to its last 10 s reading).
        cpu_cores = {name: round((used - cpu_before.get(name, 0.0)) / ran_s, 2)
                     for name, used in sorted(cpu_seen.items())}
        _log(f"CPU, cores used on average: {cpu_cores}")
        if fleet.returncode not in (0, None):
            raise SystemExit(f"the fleet exited with {fleet.returncode}; see {fleet.log}")

        after = spool_counters(spool_dir)
        sent = still = evicted = 0
        for train, (next_seq, pending, ev) in after.items():
            seq0, _, ev0 = spools_before.get(train, (0, 0, 0))
            sent += next_seq - seq0
            still += pending
            evicted += ev - ev0
        expected = sent - still - evicted
        deadline = time.monotonic() + args.drain_timeout_s
        while (archived := _archived(env, args.prefix, since_ms)) < expected:
            if time.monotonic() > deadline:
                break
            _log(f"draining: {archived} of {expected} archived")
            time.sleep(2)
        rss_end = _rss(pids, config.run_dir)
        tail.poll()
        samples = read_samples(notifier_log, args.prefix, since_ms)
        e2e = [s.total_ms for s in samples]
        rows = _lake(env).execute(
            "SELECT count(*) FROM alerts WHERE starts_with(train, ?) AND epoch_ms(ts) >= ?",
            [args.prefix, since_ms]).fetchone()
        hops = hop_stats(samples)
        kcl_calls = {name: get_records_stats(run_dir / "logs" / f"{name}.log")
                     for name in ("ingest", "detector", "archiver")}
        for name, calls in kcl_calls.items():
            _log(f"KCL {name}: {calls['calls']} GetRecords, call ms {calls.get('call_ms')}, "
                 f"gap between results ms {calls.get('gap_ms')}, {calls.get('retries')} retried")
        result = {
            "trains": args.trains,
            "p50_ms": _pct(e2e, 50),
            "p95_ms": _pct(e2e, 95),
            "p99_ms": _pct(e2e, 99),
            "frames_sent": sent,
            "frames_archived": archived,
            "frames_lost": sent - still - evicted - archived,
            **{f"hop_{name}_p99_ms": hops[name]["p99_ms"] for name in
               ("sensor_to_broker", "broker_to_ingest", "ingest_to_detector")},
            "hop_alert_to_shadow_p99_ms": hops["notifier_to_shadow"]["p99_ms"],
            "samples": len(e2e),
            "anomalies_in_lake": int(rows[0]) if rows else 0,
            "spikes_injected": spikes,
            "frames_still_spooled": still,
            "frames_evicted": evicted,
            "max_ms": round(max(e2e), 1) if e2e else None,
            "slowest": [s["hop"] for s in slowest(samples)],
            "slowest_samples": slowest(samples),
            "hops": hops,
            "services": _emf_stats(tail),
            "windows": windows(samples, since_ms, args.window_s),
            "rss_mb": {f"at_{args.rss_at_s:.0f}s": rss_early, "at_end": rss_end},
            "rss_series_mb": rss_series,
            "load_average": {"samples": loads, "at_end": os.getloadavg()},
            "cpu_cores": cpu_cores,
            "kcl": {"retrieval_mode": "POLLING", "idle_time_between_reads_ms": KCL_IDLE_MS,
                    "shard_sync_interval_ms": 1000, "archiver_flush_s": args.flush_s,
                    "get_records": kcl_calls},
            "duration_s": args.duration_s,
        }
        if len(e2e) < 1000:
            _log(f"only {len(e2e)} samples: a p99 needs >= 1,000 (a longer --duration-s)")
        _log("stopping the services (SIGTERM) ...")
    _log(f"done in {time.monotonic() - began:.0f} s; run dir {run_dir}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
