"""Helpers of the suites that run the four services through the local stack (e2e, faults): the
services as processes, polling with deadlines, the lake and the shadows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3

from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_cli.demo.run import KCL_APPLICATIONS, _service_env
from railpulse_cli.demo.supervisor import Supervisor
from railpulse_devstack.env import s3_endpoint

SERVICES = ("ingest", "detector", "notifier", "archiver")
T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], timeout: float, what: str, *, every: float = 0.5,
    supervisor: Supervisor | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail at the deadline (or when a service
    died), saying what was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if supervisor is not None and supervisor.failed():
            dead = [(p.name, p.returncode, str(p.log)) for p in supervisor.failed()]
            raise AssertionError(f"a service exited while waiting for {what}: {dead}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(every)
        last = check()
    return last


def client(env: dict[str, str], service: str, endpoint: str | None = None) -> Any:
    default = s3_endpoint(env) if service == "s3" else env["AWS_ENDPOINT_URL"]
    return boto3.client(
        service, endpoint_url=endpoint or default, region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class Running:
    env: dict[str, str]
    run_dir: Path
    supervisor: Supervisor
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Worker:
    """One more process of a service (another KCL worker): its own name, which is also its KCL
    worker id, log, state and metrics file; `env` on top of the service's environment."""

    name: str
    service: str
    env: dict[str, str] = field(default_factory=dict)
    application: str | None = None
    """A KCL application of its own (its own stream) to wait for, besides the services' ones."""


@contextmanager
def running_services(
    env: dict[str, str], run_dir: Path, overrides: dict[str, dict[str, str]] | None = None,
    lease_timeout_s: float = 180.0, workers: Sequence[Worker] = (),
) -> Iterator[Running]:
    """The four services as separate processes, started like the demo starts them, and any
    further `workers`; yields once every KCL consumer renews its leases (a lease left by an
    earlier run still names its owner, so 'held' alone is not enough: its counter must move
    after this start)."""
    overrides = overrides or {}
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)  # the services' EMF files go here
    bin_dir = Path(sys.executable).parent
    applications = [*KCL_APPLICATIONS, *(w.application for w in workers if w.application)]
    before = lease_counters(env, applications)
    with Supervisor(run_dir / "logs") as supervisor:
        for name in SERVICES:
            service_env = _service_env(env, name, run_dir)
            service_env.update(overrides.get(name, {}))
            supervisor.start(name, [str(bin_dir / f"railpulse-{name}")], service_env)
        for worker in workers:
            worker_env = {
                **_service_env(env, worker.service, run_dir), **overrides.get(worker.service, {}),
                "RAILPULSE_KCL_WORKER_ID": worker.name,
                "RAILPULSE_KCL_STATE_DIR": str(run_dir / "kcl" / worker.name),
                "RAILPULSE_METRICS_SINK": f"file://{run_dir / 'metrics' / f'{worker.name}.emf'}",
                **worker.env,
            }
            supervisor.start(worker.name, [str(bin_dir / f"railpulse-{worker.service}")], worker_env)

        def ready() -> bool:
            return leases_renewed(env, applications, before)

        wait_for(ready, lease_timeout_s, "the KCL consumers to take their leases", every=1.0,
                 supervisor=supervisor)
        yield Running(env, run_dir, supervisor, overrides)


def lake(env: dict[str, str]) -> Any:
    from railpulse_archiver.query import connect_lake

    return connect_lake(f"s3://{env['RAILPULSE_BUCKET_LAKE']}", endpoint=s3_endpoint(env),
                        region=env["AWS_REGION"])


def lake_rows(env: dict[str, str], sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """A query over a fresh connection, so the lake's newest Parquet objects are seen."""
    return [tuple(r) for r in lake(env).execute(sql, params or []).fetchall()]


def open_alerts(env: dict[str, str], thing: str) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    iot_data = client(env, "iot-data", env["RAILPULSE_IOT_DATA_ENDPOINT"])
    try:
        doc = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise
    alerts = ((doc.get("state") or {}).get("desired") or {}).get("alerts") or {}
    return list(alerts.get("open") or [])


@asynccontextmanager
async def mqtt_links(env: dict[str, str], trains: Sequence[str]) -> AsyncIterator[dict[str, Any]]:
    """A connected MQTT link (`railpulse_edge.link.MqttLink`) per train, each with the train's
    own certificate (see `railpulse_edge.fleet.ensure_certs`); closed on exit."""
    from railpulse_edge.link import LinkConfig, MqttLink

    certs = Path(env["RAILPULSE_CERTS_DIR"])
    links = {
        train: MqttLink(LinkConfig(
            thing=train, host=env["RAILPULSE_MQTT_HOST"], port=int(env["RAILPULSE_MQTT_PORT"]),
            ca_file=Path(env["RAILPULSE_CA_FILE"]), cert_file=certs / f"{train}.crt",
            key_file=certs / f"{train}.key", client_id=train))
        for train in trains
    }
    stop = asyncio.Event()
    tasks = [asyncio.create_task(link.run(stop)) for link in links.values()]
    try:
        await asyncio.wait_for(asyncio.gather(*(link.connected.wait() for link in links.values())),
                               15)
        yield links
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@contextmanager
def suite_services(
    stack: dict[str, str], suite: str, run: str, devices: Iterable[str],
    overrides: dict[str, dict[str, str]] | None = None,
) -> Iterator[Running]:
    """`running_services` for one test module: its devices' certificates, a run folder next to the
    stack's (not pytest's tmp_path: concurrent pytest sessions prune each other's old base temp
    dirs), and this process's AWS credentials for reading the lake (DuckDB's S3 secret takes
    botocore's)."""
    import pytest

    from railpulse_edge.fleet import ensure_certs

    env = dict(stack)
    ensure_certs(list(devices), Path(env["RAILPULSE_CERTS_DIR"]), env["AWS_ENDPOINT_URL"])
    run_dir = Path(env["RAILPULSE_STACK_DIR"]).parent / suite / time.strftime(f"run-%Y%m%dT%H%M%S-{run}")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            mp.setenv(key, env[key])
        with running_services(env, run_dir, overrides) as running:
            yield running


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (a KCL daemon runs in its own session, so a process group
    does not reach it)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_service(running: Running, name: str) -> None:
    """kill -9 a service and every process it started, as when its Fargate task dies; the dead
    task no longer counts as a service that exited on its own."""
    process = next(p for p in running.supervisor.processes if p.name == name and p.alive)
    assert process.popen is not None
    tree = [process.popen.pid, *_descendants(process.popen.pid)]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.popen.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in tree), 10,
             f"every process of {name} to die")
    running.supervisor.processes.remove(process)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def start_service(running: Running, name: str, lease_timeout_s: float = 120.0) -> None:
    """Start a service again with its environment (ECS replacing a dead task) and wait until its
    KCL consumers, if any, renew their leases."""
    apps = [a for a in KCL_APPLICATIONS if a.startswith(f"railpulse-{name}")]
    before = lease_counters(running.env, apps)
    service_env = _service_env(running.env, name, running.run_dir)
    service_env.update(running.overrides.get(name, {}))
    running.supervisor.start(name, [str(Path(sys.executable).parent / f"railpulse-{name}")], service_env)
    if apps:
        wait_for(lambda: leases_renewed(running.env, apps, before), lease_timeout_s,
                 f"{name}'s KCL consumers to renew their leases", every=1.0,
                 supervisor=running.supervisor)
