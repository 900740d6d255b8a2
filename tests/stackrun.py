"""Helpers of the suites that run the four services through the local stack (e2e, faults): the
services as processes, polling with deadlines, the lake and the shadows."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3

from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_cli.demo.run import KCL_APPLICATIONS, _service_env
from railpulse_cli.demo.supervisor import Supervisor

SERVICES = ("ingest", "detector", "notifier", "archiver")
T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float, what: str, *, every: float = 0.5,
    supervisor: Supervisor | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail at the deadline (or when a service
    died), saying what was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    last: T = check()
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
    return boto3.client(
        service, endpoint_url=endpoint or env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class Running:
    env: dict[str, str]
    run_dir: Path
    supervisor: Supervisor


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
        yield Running(env, run_dir, supervisor)


def lake(env: dict[str, str]) -> Any:
    from railpulse_archiver.query import connect_lake

    return connect_lake(f"s3://{env['RAILPULSE_BUCKET_LAKE']}", endpoint=env["AWS_ENDPOINT_URL"],
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
