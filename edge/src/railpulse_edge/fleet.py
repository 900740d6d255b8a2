"""`railpulse-fleet`: N simulated trains in one process, each with its own identity, TLS
connection, spool and shadow, driven by one vectorised signal model and an optional scenario.

    railpulse-fleet --trains 50 --scenario scenario.toml --ground-truth truth.jsonl
    railpulse-fleet --generic        # publish the seed-003 flat payloads once and exit

Certificates come from --certs-dir (the local stack's pki/devices); with --ensure-certs the
local stack's PKI issues and registers any that are missing (fast: EC P-256, reused across runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import structlog

from railpulse_edge.agent import AgentConfig, EdgeAgent
from railpulse_edge.frames import METERING_UNIT
from railpulse_edge.link import LinkConfig, MqttLink
from railpulse_edge.sim.generic import GENERIC_TOPIC, generic_payloads
from railpulse_edge.sim.model import CHANNELS, FleetModel
from railpulse_edge.sim.scenario import Scenario, ScenarioRunner, load_scenario
from railpulse_edge.sources import Sample
from railpulse_edge.spool import Spool
from railpulse_shared.entrypoint import add_version_argument
from railpulse_shared.log import configure_logging
from railpulse_shared.shutdown import GracefulShutdown

__all__ = ["Fleet", "FleetOptions", "build_parser", "ensure_certs", "main", "train_names"]

logger = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class FleetOptions:
    host: str
    port: int
    ca_file: Path
    certs_dir: Path
    spool_dir: Path
    rate_hz: float = 1.0
    time_scale: float = 1.0
    topic: str = "trains/{thing}/telemetry"
    spool_sync: str = "NORMAL"
    spool_max_frames: int = 86_400
    backfill_max_bytes: int = 4 * METERING_UNIT
    backfill_rate: float = 5.0
    shadow: bool = True
    connect_rate: float = 50.0
    """New connections per second while the fleet starts (spreads the TLS handshakes)."""


def train_names(n: int, prefix: str = "train-", start: int = 1) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(start, start + n)]


def ensure_certs(
    names: Sequence[str], certs_dir: Path, endpoint: str | None = None, *, register: bool = True
) -> None:
    """Issue missing device certificates with the local stack's PKI (dev/bench only): it keeps
    `<certs_dir>/<name>.crt|key` (the stack's `pki/devices`), reused across runs. With `register`,
    also register each as a thing in moto's IoT registry (the broker itself only checks the CA)."""
    from railpulse_devstack.pki import Pki  # the workspace's dev stack, not a runtime dependency
    from railpulse_devstack.things import Registry

    pki = Pki(certs_dir.parent)
    if not register:
        for name in names:
            pki.ensure_device(name)
        return
    Registry(endpoint or os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"), pki).ensure_all(names)


class Fleet:
    """Trains of one process. `add()` brings trains online; `tick()` samples all of them."""

    def __init__(self, options: FleetOptions, model: FleetModel, names: Sequence[str],
                 scenario: Scenario | None = None, truth: IO[str] | None = None) -> None:
        if len(names) > model.n:
            raise ValueError("more train names than the model simulates")
        self.options = options
        self.model = model
        self.names = list(names)
        self.agents: list[EdgeAgent] = []
        self.runner = ScenarioRunner(scenario or Scenario(), self.names, truth)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.ticks = 0
        self.ticked = asyncio.Condition()
        self.tick_ms: list[float] = []
        """How long each tick took (model step + spooling + live publishes): the CPU budget."""
        self.late_ms: list[float] = []
        """How late each tick started against its 1/rate grid (event-loop lag)."""
        self._t0 = time.time()

    async def add(self, count: int, keep_latencies: bool = False) -> list[EdgeAgent]:
        """Start the next `count` trains (spool, connection, shadow), paced by connect_rate."""
        o = self.options
        added: list[EdgeAgent] = []
        for name in self.names[len(self.agents): len(self.agents) + count]:
            spool = Spool(o.spool_dir / f"{name}.db", max_frames=o.spool_max_frames,
                          synchronous="NORMAL" if o.spool_sync == "NORMAL" else "FULL", cache_kib=64)
            agent = EdgeAgent(
                AgentConfig(thing=name, topic=o.topic.format(thing=name),
                            backfill_max_bytes=o.backfill_max_bytes, backfill_rate=o.backfill_rate,
                            shadow=o.shadow),
                LinkConfig(thing=name, host=o.host, port=o.port, ca_file=o.ca_file,
                           cert_file=o.certs_dir / f"{name}.crt", key_file=o.certs_dir / f"{name}.key",
                           client_id=name),
                spool,
            )
            agent.counters.keep_latencies = keep_latencies
            self.agents.append(agent)
            added.append(agent)
            self._tasks.append(asyncio.create_task(agent.run(self._stop)))
            await asyncio.sleep(1.0 / o.connect_rate)
        return added

    def tick(self) -> None:
        """Advance the model one sampling period and record a frame on every running train."""
        o = self.options
        dt = o.time_scale / o.rate_hz
        now_ms = int(time.time() * 1000)
        for outage in self.runner.before_step(self.model, self.model.t + dt, now_ms):
            if outage.train < len(self.agents):
                seconds = outage.seconds / o.time_scale
                asyncio.get_running_loop().create_task(self.agents[outage.train].link.hold_down(seconds))
        snap = self.model.step(dt)
        self.runner.after_step(snap.values)
        # Rounded once for the whole fleet; inf (a spike gone wild) becomes NaN and is left out.
        values = np.round(snap.values[: len(self.agents)], 3)
        values[~np.isfinite(values)] = np.nan
        rows = values.tolist()
        speeds = snap.speed_kmh.tolist()
        lats, lons = snap.lat.tolist(), snap.lon.tolist()
        for i, agent in enumerate(self.agents):
            readings = dict(zip(CHANNELS, rows[i], strict=True))
            agent.record(Sample(readings, speeds[i], (lats[i], lons[i]), rounded=True), now_ms)

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> None:
        period = 1.0 / self.options.rate_hz
        next_tick = time.monotonic()
        end = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set() and (end is None or time.monotonic() < end):
            started = time.monotonic()
            self.late_ms.append((started - next_tick) * 1000.0)
            self.tick()
            self.tick_ms.append((time.monotonic() - started) * 1000.0)
            self.ticks += 1
            async with self.ticked:
                self.ticked.notify_all()
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < -period:
                logger.warning("fleet.behind", seconds=round(-delay, 2), trains=len(self.agents))
                next_tick = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(delay, 0.0))

    async def wait_ticks(self, n: int) -> None:
        """Wait until `n` more ticks have happened."""
        target = self.ticks + n
        async with self.ticked:
            await self.ticked.wait_for(lambda: self.ticks >= target)

    def connected(self) -> int:
        return sum(a.link.connected.is_set() for a in self.agents)

    async def wait_connected(self, seconds: float) -> int:
        """Wait (at most `seconds`) until every train is online; returns how many are."""
        deadline = time.monotonic() + seconds
        while self.connected() < len(self.agents) and time.monotonic() < deadline:
            await self.wait_ticks(1)
        return self.connected()

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for agent in self.agents:
            agent.spool.close()


async def publish_generic(host: str, port: int, ca_file: Path, certs_dir: Path) -> int:
    """Publish the seed-003 flat payloads, each from its own device; returns how many."""
    sent = 0
    by_device: dict[str, list[bytes]] = {}
    for device, payload in generic_payloads():
        by_device.setdefault(device, []).append(payload)
    for device, payloads in by_device.items():
        link = MqttLink(LinkConfig(thing=device, host=host, port=port, ca_file=ca_file,
                                   cert_file=certs_dir / f"{device}.crt",
                                   key_file=certs_dir / f"{device}.key", client_id=device))
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        await asyncio.wait_for(link.connected.wait(), 15)
        for payload in payloads:
            await asyncio.wait_for(link.publish(GENERIC_TOPIC, payload).done, 15)
            sent += 1
            logger.info("generic.published", device=device, bytes=len(payload))
        stop.set()
        await task
    return sent


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="railpulse-fleet",
        description="Simulate a fleet of trains in one process: each train has its own certificate, "
        "MQTT connection, spool and shadow; signals come from one vectorised physical model; a "
        "scenario file schedules failures (ground truth written as they start).",
    )
    add_version_argument(p, "railpulse-edge")
    p.add_argument("--trains", type=int, default=10, help="number of trains (default: %(default)s)")
    p.add_argument("--prefix", default="train-", help="thing name prefix; names are <prefix>NNN from 001")
    p.add_argument("--rate-hz", type=float, default=1.0, help="frames per second per train")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="simulated seconds per real second (faults and outages run faster)")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--scenario", type=Path, default=None, help="scenario file (TOML or JSON)")
    p.add_argument("--ground-truth", type=Path, default=Path("ground_truth.jsonl"),
                   help="where the scenario's ground truth goes (JSON lines)")
    p.add_argument("--seed", type=int, default=None, help="model seed (default: the scenario's)")
    p.add_argument("--spool-dir", type=Path, default=Path(".local/fleet"), help="one spool per train here")
    p.add_argument("--spool-sync", choices=["FULL", "NORMAL"], default="NORMAL",
                   help="SQLite synchronous mode of the spools")
    p.add_argument("--topic", default="trains/{thing}/telemetry", help="publish topic template")
    p.add_argument("--basic-ingest-rule", default=None,
                   help="publish via Basic Ingest: $aws/rules/<RULE>/<topic>")
    p.add_argument("--no-shadow", dest="shadow", action="store_false", help="do not follow shadows")
    p.add_argument("--connect-rate", type=float, default=50.0, help="new connections per second at start")
    p.add_argument("--mqtt-host", default=env.get("RAILPULSE_MQTT_HOST", "127.0.0.1"), help="broker host")
    p.add_argument("--mqtt-port", type=int, default=int(env.get("RAILPULSE_MQTT_PORT", "8883")),
                   help="broker port")
    p.add_argument("--ca-file", type=Path, default=env.get("RAILPULSE_CA_FILE"), help="broker CA (PEM)")
    p.add_argument("--certs-dir", type=Path, default=env.get("RAILPULSE_CERTS_DIR"),
                   help="directory of <thing>.crt / <thing>.key")
    p.add_argument("--ensure-certs", action="store_true",
                   help="issue and register missing certificates with the local stack first")
    p.add_argument("--generic", action="store_true",
                   help="publish the seed-003 flat generic payloads on iot/sensors and exit")
    p.add_argument("--log-level", default="info")
    return p


async def _run(args: argparse.Namespace) -> int:
    if args.ca_file is None or args.certs_dir is None:
        print("railpulse-fleet: set --ca-file and --certs-dir (or source the stack env)", file=sys.stderr)
        return 2
    if args.generic:
        if args.ensure_certs:
            ensure_certs(sorted({d for d, _ in generic_payloads()}), args.certs_dir)
        await publish_generic(args.mqtt_host, args.mqtt_port, args.ca_file, args.certs_dir)
        return 0
    names = train_names(args.trains, args.prefix)
    if args.ensure_certs:
        ensure_certs(names, args.certs_dir)
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    model = FleetModel(len(names), seed=args.seed if args.seed is not None else scenario.seed)
    options = FleetOptions(
        host=args.mqtt_host, port=args.mqtt_port, ca_file=args.ca_file, certs_dir=args.certs_dir,
        spool_dir=args.spool_dir, rate_hz=args.rate_hz, time_scale=args.time_scale,
        topic=f"$aws/rules/{args.basic_ingest_rule}/{args.topic}" if args.basic_ingest_rule else args.topic,
        spool_sync=args.spool_sync, shadow=args.shadow, connect_rate=args.connect_rate,
    )
    args.ground_truth.parent.mkdir(parents=True, exist_ok=True)
    with args.ground_truth.open("a") as truth:
        fleet = Fleet(options, model, names, scenario, truth)
        async with GracefulShutdown() as shutdown:
            try:
                await fleet.add(len(names))
                logger.info("fleet.started", trains=len(names))
                await fleet.run(shutdown.event, args.duration_s)
            finally:
                await fleet.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, service="fleet")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
