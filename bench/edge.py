"""How many trains one simulator process sustains at 1 Hz against the local broker.

Each train is a full agent: its own certificate and TLS connection, its own SQLite spool, its
shadow subscription. The fleet is ramped (`--sizes`); at each size, after a warm-up, the live
publish rate (frames PUBACKed per second) and the publish→PUBACK latency are measured over a
window. A size is sustained when the rate holds at >= 99% of the target (trains x rate) and the
p99 latency stays under `--p99-bound-ms`. Memory per train = (RSS at the largest sustained size -
RSS before the first train) / trains. The baseline of every ratio is the target of the same run.

    make bench-edge BENCH_ARGS="--sizes 50,100,200,300 --window-s 15"

Progress on stderr; the last stdout line is one JSON object with `trains_sustained`,
`mb_per_train`, `publish_p99_ms` (and the per-step detail).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from railpulse_edge.fleet import Fleet, FleetOptions, ensure_certs, train_names
from railpulse_edge.sim.model import FleetModel


def _log(msg: str, **fields: Any) -> None:
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"[bench-edge] {msg} {extra}", file=sys.stderr, flush=True)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _stack_env() -> dict[str, str]:
    from railpulse_devstack import stack as devstack
    from railpulse_devstack.config import load_config
    from railpulse_devstack.env import stack_env

    config = load_config()
    if not all(c.running for c in devstack.status(config)):
        devstack.up(config)  # idempotent: starts only what is missing
    return stack_env(config)


async def _ramp(args: argparse.Namespace, env: dict[str, str], spool_dir: Path) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    names = train_names(max(sizes), args.prefix)
    t0 = time.monotonic()
    ensure_certs(names, Path(env["RAILPULSE_CERTS_DIR"]), env["AWS_ENDPOINT_URL"], register=args.register)
    _log("certificates ready", trains=len(names), seconds=round(time.monotonic() - t0, 2))

    options = FleetOptions(
        host=env["RAILPULSE_MQTT_HOST"], port=int(env["RAILPULSE_MQTT_PORT"]),
        ca_file=Path(env["RAILPULSE_CA_FILE"]), certs_dir=Path(env["RAILPULSE_CERTS_DIR"]),
        spool_dir=spool_dir, rate_hz=args.rate_hz, spool_sync="NORMAL",
        shadow=not args.no_shadow, connect_rate=args.connect_rate,
    )
    model = FleetModel(len(names), seed=1)
    fleet = Fleet(options, model, names)
    base_rss = _rss_mb()
    stop = asyncio.Event()
    ticking = asyncio.create_task(fleet.run(stop))
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    try:
        for size in sizes:
            await fleet.add(size - len(fleet.agents), keep_latencies=True)
            connected = await fleet.wait_connected(60)
            await asyncio.sleep(args.warmup_s)
            # Measure over whole ticks: from half a period after tick k to half a period after
            # tick k+n, the PUBACKs counted are those of the n frames per train of ticks k+1..k+n.
            period = 1.0 / args.rate_hz
            n_ticks = max(1, round(args.window_s * args.rate_hz))
            await fleet.wait_ticks(1)
            await asyncio.sleep(period / 2)
            for a in fleet.agents:
                a.counters.latencies_ms.clear()
            fleet.tick_ms.clear()
            fleet.late_ms.clear()
            acked0 = sum(a.counters.live_acked for a in fleet.agents)
            t_start = time.monotonic()
            await fleet.wait_ticks(n_ticks)
            await asyncio.sleep(period / 2)
            elapsed = time.monotonic() - t_start
            acked = sum(a.counters.live_acked for a in fleet.agents) - acked0
            lat = np.concatenate([np.asarray(a.counters.latencies_ms) for a in fleet.agents])
            target = size * args.rate_hz
            # Wall-clock rate: a fleet that cannot keep its 1 Hz grid stretches `elapsed`.
            rate = acked / max(elapsed, n_ticks * period)
            p99 = float(np.percentile(lat, 99)) if lat.size else float("inf")
            rss = _rss_mb()
            step = {
                "trains": size, "connected": connected, "target_per_s": target,
                "acked_per_s": round(rate, 2), "rate_ratio": round(rate / target, 4),
                "publish_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "publish_p99_ms": round(p99, 2), "rss_mb": round(rss, 1),
                "tick_ms_max": round(max(fleet.tick_ms, default=0.0), 1),
                "tick_late_ms_max": round(max(fleet.late_ms, default=0.0), 1),
                "window_s": round(elapsed, 3),
                "mb_per_train": round((rss - base_rss) / size, 3),
            }
            step["sustained"] = (
                connected == size and rate >= 0.99 * target and p99 <= args.p99_bound_ms
            )
            steps.append(step)
            _log("step", **step)
            if not step["sustained"]:
                break
            best = step
    finally:
        stop.set()
        await ticking
        await fleet.close()
    return {
        "trains_sustained": best["trains"] if best else 0,
        "mb_per_train": best["mb_per_train"] if best else None,
        "publish_p99_ms": best["publish_p99_ms"] if best else None,
        "target_trains": 200,
        "rate_hz": args.rate_hz,
        "base_rss_mb": round(base_rss, 1),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.edge", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="50,100,200,300", help="fleet sizes to ramp through")
    p.add_argument("--rate-hz", type=float, default=1.0, help="frames per second per train")
    p.add_argument("--window-s", type=float, default=15.0, help="measurement window per size")
    p.add_argument("--warmup-s", type=float, default=5.0, help="settling time after a ramp step")
    p.add_argument("--p99-bound-ms", type=float, default=1000.0, help="p99 publish latency bound")
    p.add_argument("--connect-rate", type=float, default=50.0, help="new TLS connections per second")
    p.add_argument("--prefix", default="bench-train-", help="thing names of the bench fleet")
    p.add_argument("--register", action="store_true",
                   help="also register the bench things in moto's IoT registry (slower)")
    p.add_argument("--no-shadow", action="store_true", help="trains do not follow their shadows")
    args = p.parse_args(argv)

    from railpulse_shared.log import configure_logging

    configure_logging("warning", service="bench-edge")
    env = _stack_env()
    spool_dir = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    try:
        result = asyncio.run(_ramp(args, env, spool_dir))
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
