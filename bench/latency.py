"""Sensor-to-shadow latency through the whole local stack: a fleet at 1 Hz, every service a process.

    make bench-latency BENCH_ARGS="--trains 50 --duration-s 150"

1. the local stack (`railpulse stack up`), then ingest, detector, notifier and archiver started as
   `railpulse demo` starts them (`_service_env`: each its own process and environment); the fleet
   starts only once every KCL consumer has renewed its leases after this start;
2. `railpulse-fleet --trains N` at 1 Hz with a generated scenario: from `--first-spike-s` on, every
   `--spike-every-s` one train's bearing temperature jumps past the critical limit for one sample
   (a different train and channel each time, so each raises a new alarm);
3. after the fleet stops, the pipeline drains into the lake; the figures:
   - sensor -> shadow: the notifier's EMF `NotificationLatency` (shadow written - sensor time), one
     sample per alarm raised or escalated (the spikes and anything the models find);
   - per hop, from the anomalies in the lake: sensor -> broker (received_ms - ts), broker -> ingest
     (ingested_ms - received_ms), ingest -> detector (detected_ms - ingested_ms), and the
     notifier's `ReceiptToShadowLatency` (alert received from SQS -> shadow written);
   - frames sent (the trains' spool sequence counters) against frames archived (distinct
     train/seq in the lake); frames still spooled on a train are not lost.

KCL settings (from `_service_env`, measured in docs/design.md): polling (`retrievalMode = POLLING`),
`idleTimeBetweenReadsInMillis` 200 for ingest and detector, 1000 for the archiver,
`shardSyncIntervalMillis` 1000; the archiver flushes every `--flush-s` seconds.

Progress on stderr; the last stdout line is one JSON object.
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

from railpulse_cli.demo.emf import MetricsTail
from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_cli.demo.report import spool_counters
from railpulse_cli.demo.run import KCL_APPLICATIONS, _service_env
from railpulse_cli.demo.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "detector", "notifier", "archiver")
KCL_IDLE_MS = {"ingest": 200, "detector": 200, "archiver": 1000}


def _log(msg: str) -> None:
    print(f"[bench-latency] {msg}", file=sys.stderr, flush=True)


def _scenario(path: Path, trains: int, first_s: float, every_s: float, until_s: float) -> int:
    """One single-sample bearing spike (+100 degC: 150-170 degC, past the 120 degC critical limit,
    inside the physical range) every `every_s`, each on another (train, channel)."""
    lines = ["seed = 7", ""]
    k = 0
    while first_s + k * every_s < until_s and k < trains * 8:
        lines += [
            "[[fault]]",
            f"train = {(k * 7) % trains}",
            'kind = "spike"',
            f'channel = "bearing_temp_{k % 8 + 1}"',
            f"at_s = {first_s + k * every_s:.1f}",
            "magnitude = 100.0",
            "",
        ]
        k += 1
    path.write_text("\n".join(lines))
    return k


def _lake(env: dict[str, str]) -> Any:
    from railpulse_archiver.query import connect_lake

    return connect_lake(f"s3://{env['RAILPULSE_BUCKET_LAKE']}", endpoint=env["AWS_ENDPOINT_URL"],
                        region=env["AWS_REGION"])


def _archived(env: dict[str, str], prefix: str, since_ms: int) -> int:
    row = _lake(env).execute(
        "SELECT count(*) FROM (SELECT DISTINCT train, seq FROM telemetry "
        "WHERE starts_with(train, ?) AND epoch_ms(ts) >= ?)", [prefix, since_ms]).fetchone()
    return int(row[0]) if row else 0


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.latency", description=__doc__.split("\n")[0])
    p.add_argument("--trains", type=int, default=50)
    p.add_argument("--duration-s", type=float, default=150.0, help="how long the fleet runs")
    p.add_argument("--first-spike-s", type=float, default=20.0)
    p.add_argument("--spike-every-s", type=float, default=3.0)
    p.add_argument("--flush-s", type=float, default=5.0, help="the archiver's buffer max age")
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
    _log(f"stack ready in {time.monotonic() - began:.1f} s")

    run_dir = REPO / ".local" / "bench" / time.strftime("latency-%Y%m%dT%H%M%S")
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    spool_dir = REPO / ".local" / "bench" / "latency-spools"  # sequence numbers never restart
    scenario = run_dir / "scenario.toml"
    spikes = _scenario(scenario, args.trains, args.first_spike_s, args.spike_every_s,
                       args.duration_s - 5)
    tail = MetricsTail({n: run_dir / "metrics" / f"{n}.emf" for n in SERVICES})
    bin_dir = Path(sys.executable).parent
    result: dict[str, Any] = {}
    with Supervisor(run_dir / "logs") as supervisor:
        before = lease_counters(env, KCL_APPLICATIONS)
        for name in SERVICES:
            service_env = _service_env(env, name, run_dir)
            if name == "archiver":
                service_env["RAILPULSE_BUFFER_MAX_AGE_S"] = str(args.flush_s)
            supervisor.start(name, [str(bin_dir / f"railpulse-{name}")], service_env)
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
        next_report = started + 10
        while fleet.alive:
            time.sleep(1)
            if time.monotonic() >= next_report:
                next_report += 10
                tail.poll()
                lat = tail.samples.get("notifier", {}).get("NotificationLatency", [])
                _log(f"[{time.monotonic() - started:4.0f}s] frames in "
                     f"{tail.total('ingest', 'RecordsForwarded'):6.0f} | scored "
                     f"{tail.total('detector', 'FramesScored'):6.0f} | alarms "
                     f"{len(lat):3d} | p99 so far {_pct(lat, 99)} ms")
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
        # The anomalies of this run, with their hop timestamps, once the lake has them.
        tail.poll()
        rows = _lake(env).execute(
            "SELECT epoch_ms(ts), received_ms, ingested_ms, detected_ms FROM alerts "
            "WHERE starts_with(train, ?) AND epoch_ms(ts) >= ?", [args.prefix, since_ms]).fetchall()
        notifier = tail.samples.get("notifier", {})
        e2e = notifier.get("NotificationLatency", [])
        hops = {
            "sensor_to_broker": [float(r - t) for t, r, _, _ in rows if r],
            "broker_to_ingest": [float(i - r) for _, r, i, _ in rows if r and i],
            "ingest_to_detector": [float(d - i) for _, _, i, d in rows if i and d],
            "alert_to_shadow": list(notifier.get("ReceiptToShadowLatency", [])),
        }
        result = {
            "trains": args.trains,
            "p50_ms": _pct(e2e, 50),
            "p95_ms": _pct(e2e, 95),
            "p99_ms": _pct(e2e, 99),
            "frames_sent": sent,
            "frames_archived": archived,
            "frames_lost": sent - still - evicted - archived,
            **{f"hop_{name}_p99_ms": _pct(values, 99) for name, values in hops.items()},
            "samples": len(e2e),
            "anomalies_in_lake": len(rows),
            "spikes_injected": spikes,
            "frames_still_spooled": still,
            "frames_evicted": evicted,
            "max_ms": round(max(e2e), 1) if e2e else None,
            "kcl": {"retrieval_mode": "POLLING", "idle_time_between_reads_ms": KCL_IDLE_MS,
                    "shard_sync_interval_ms": 1000, "archiver_flush_s": args.flush_s},
            "duration_s": args.duration_s,
        }
        _log("stopping the services (SIGTERM) ...")
    _log(f"done in {time.monotonic() - began:.0f} s; run dir {run_dir}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
