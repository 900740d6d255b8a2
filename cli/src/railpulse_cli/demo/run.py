"""`railpulse demo`: start everything, watch it work, report what happened.

1. the local stack (`railpulse stack up`: moto, mosquitto with mutual TLS, PostgreSQL, the IoT
   Core stand-in);
2. the four services, each as its own process with its own environment, as on Fargate (and the
   console);
3. once the KCL consumers hold their leases, a simulated fleet with scheduled faults and a tunnel;
4. live progress every few seconds, from the services' own EMF metrics;
5. at the end (or on Ctrl-C) the fleet stops, the pipeline drains into the lake, the services
   get SIGTERM, and the report is printed. The stack stays up, so the data can still be queried
   with `railpulse query`; `make stack-down` stops it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from railpulse_cli.commands.stack import up_with_progress
from railpulse_cli.demo.emf import MetricsTail
from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_cli.demo.report import Report, collect, spool_counters
from railpulse_cli.demo.supervisor import Supervisor
from railpulse_cli.errors import CliError, UsageError

__all__ = ["DemoOptions", "run_demo"]

REPO = Path(__file__).resolve().parents[4]

# The KCL applications whose leases must be held before the fleet starts, so that latency
# figures measure the pipeline and not the consumers' first start.
KCL_APPLICATIONS = (
    "railpulse-ingest",
    "railpulse-detector",
    "railpulse-archiver-telemetry",
    "railpulse-archiver-events",
)


@dataclass(frozen=True)
class DemoOptions:
    trains: int = 20
    duration_s: float = 300.0
    time_scale: float = 1.0
    scenario: Path = REPO / "edge" / "scenarios" / "demo.toml"
    console: bool = True
    console_port: int = 8080
    progress_every_s: float = 5.0
    lease_timeout_s: float = 180.0
    drain_timeout_s: float = 90.0


def _service_env(base: dict[str, str], name: str, run_dir: Path) -> dict[str, str]:
    env = {**os.environ, **base}
    env.update(
        {
            "RAILPULSE_SERVICE": name,
            "RAILPULSE_LOG_LEVEL": "info",
            "RAILPULSE_METRICS_SINK": f"file://{run_dir / 'metrics' / f'{name}.emf'}",
            # A fixed worker id per service: a restart takes its own leases back at once.
            "RAILPULSE_KCL_WORKER_ID": f"{name}-demo",
            "RAILPULSE_KCL_STATE_DIR": str(run_dir / "kcl" / name),
            # Locally: discover shards every second, poll every 200 ms (see docs/design.md's figures).
            "RAILPULSE_KCL_SHARD_SYNC_MS": "1000",
            "RAILPULSE_KCL_IDLE_TIME_MS": "200",
            "RAILPULSE_KCL_CHECKPOINT_INTERVAL_S": "5",
        }
    )
    if name == "archiver":
        env["RAILPULSE_KCL_IDLE_TIME_MS"] = "1000"  # the archive is not latency-critical
        env["RAILPULSE_BUFFER_MAX_AGE_S"] = "15"
        env["RAILPULSE_WAREHOUSE_LOAD_EVERY_S"] = "30"
    return env


def _line(tail: MetricsTail, started: float) -> str:
    t = tail.total
    lag = tail.last.get("detector", {}).get("MillisBehindLatest")
    return (
        f"[{time.monotonic() - started:6.0f}s] frames in {t('ingest', 'RecordsForwarded'):7.0f}"
        f" | rejected {t('ingest', 'RecordsRejected'):4.0f}"
        f" | scored {t('detector', 'FramesScored'):7.0f}"
        f" | detector lag {'-' if lag is None else f'{lag:.0f} ms':>7}"
        f" | anomalies {t('detector', 'AnomaliesEmitted'):4.0f}"
        f" | alarms raised {t('notifier', 'AlarmsRaised'):3.0f}"
        f" | shadow updates {t('notifier', 'ShadowUpdates'):4.0f}"
        f" | acked {t('notifier', 'AlarmsAcknowledged'):3.0f}"
        f" | rows archived {t('archiver', 'RowsWritten'):8.0f}"
    )


class _Interrupted(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


def run_demo(options: DemoOptions) -> int:
    from railpulse_devstack.config import load_config
    from railpulse_devstack.env import stack_env
    from railpulse_devstack.ports import is_free
    from railpulse_edge.errors import ScenarioError
    from railpulse_edge.fleet import train_names
    from railpulse_edge.sim.scenario import ScenarioRunner, load_scenario

    say = print
    try:  # a bad scenario or fleet size fails here, clearly, before anything starts
        ScenarioRunner(load_scenario(options.scenario), train_names(options.trains))
    except ScenarioError as exc:
        print(
            f"railpulse demo: {exc} (scenario {options.scenario}, --trains {options.trains})",
            file=sys.stderr,
        )
        return 2
    if options.console and not is_free("127.0.0.1", options.console_port):
        raise UsageError(
            f"the console's port {options.console_port} is taken by another process",
            "pick another with --console-port, or run without the console (--no-console)",
        )
    config = load_config()
    began = time.monotonic()
    up_with_progress("railpulse demo")  # says what it is doing on stderr
    env = stack_env(config)
    os.environ.update(env)  # this process queries the lake and the tables too

    run_dir = REPO / ".local" / "demo" / time.strftime("run-%Y%m%dT%H%M%S")
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    tail = MetricsTail(
        {
            name: run_dir / "metrics" / f"{name}.emf"
            for name in ("ingest", "detector", "notifier", "archiver")
        }
    )
    truth = run_dir / "ground_truth.jsonl"
    spool_dir = REPO / ".local" / "demo" / "spools"
    spools_before: dict[str, tuple[int, int, int]] = {}
    bin_dir = Path(sys.executable).parent
    previous = signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    report: Report | None = None
    fleet_started_ms: int | None = None
    with Supervisor(run_dir / "logs") as supervisor:
        try:
            # A lease left by an earlier run still names its owner: ready means renewed since now.
            leases_before = lease_counters(env, KCL_APPLICATIONS)
            for name in ("ingest", "detector", "notifier", "archiver"):
                supervisor.start(
                    name, [str(bin_dir / f"railpulse-{name}")], _service_env(env, name, run_dir)
                )
            if options.console:
                supervisor.start(
                    "console",
                    [str(bin_dir / "railpulse-console"), "--port", str(options.console_port)],
                    _service_env(env, "console", run_dir),
                )
                say(f"  console: http://127.0.0.1:{options.console_port}")
            say(f"  services started; logs in {run_dir / 'logs'}")

            say("  waiting for the KCL consumers to take their leases ...")
            deadline = time.monotonic() + options.lease_timeout_s
            while not leases_renewed(env, KCL_APPLICATIONS, leases_before):
                died = supervisor.failed()
                if died:
                    for process in died:
                        print(f"railpulse demo: {process.death()}", file=sys.stderr)
                    raise CliError(
                        f"{', '.join(p.name for p in died)} exited before the fleet started",
                        f"see the logs in {run_dir / 'logs'}",
                    )
                if time.monotonic() > deadline:
                    raise CliError(
                        f"the KCL consumers did not take their leases in "
                        f"{options.lease_timeout_s:.0f} s",
                        f"see the logs in {run_dir / 'logs'}",
                    )
                time.sleep(2)
            say(f"  consumers ready after {time.monotonic() - began:.0f} s")

            # Spools live across runs, like a train's: sequence numbers never restart.
            spools_before = spool_counters(spool_dir)
            fleet_started_ms = int(time.time() * 1000)
            supervisor.start(
                "fleet",
                [
                    str(bin_dir / "railpulse-fleet"),
                    "--trains",
                    str(options.trains),
                    "--ensure-certs",
                    "--scenario",
                    str(options.scenario),
                    "--ground-truth",
                    str(truth),
                    "--spool-dir",
                    str(spool_dir),
                    "--time-scale",
                    str(options.time_scale),
                    "--duration-s",
                    str(options.duration_s),
                ],
                _service_env(env, "fleet", run_dir),
            )
            say(
                f"  fleet of {options.trains} trains at 1 Hz for {options.duration_s:.0f} s "
                f"(faults from {options.scenario.name}; Ctrl-C ends early and still reports)"
            )
            started = time.monotonic()
            fleet = supervisor.processes[-1]
            reported: set[str] = set()
            while fleet.alive:
                time.sleep(options.progress_every_s)
                tail.poll()
                say(_line(tail, started))
                for process in supervisor.failed():
                    if process.name not in reported:
                        reported.add(process.name)
                        print(f"railpulse demo: !! {process.death()}", file=sys.stderr)
        except _Interrupted:
            say("\n  interrupted: stopping the fleet and reporting what arrived")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the drain finish
        for process in supervisor.processes:
            if process.name == "fleet":
                supervisor.stop(process)
                if process.popen is not None:
                    process.popen.wait(30)
        if fleet_started_ms is not None:
            say("  draining the pipeline into the lake ...")
            report = collect(
                run_dir=run_dir,
                spool_dir=spool_dir,
                before=spools_before,
                env=env,
                tail=tail,
                since_ms=fleet_started_ms,
                drain_timeout_s=options.drain_timeout_s,
                say=say,
            )
        say("  stopping the services (SIGTERM: drain, checkpoint, exit) ...")
    signal.signal(signal.SIGINT, previous)
    if report is not None:
        say(report.render())
    say(
        'The stack is still up: try `uv run railpulse query "SELECT train, count(*) FROM alerts '
        'GROUP BY train"`; `make stack-down` stops it.'
    )
    return 0
