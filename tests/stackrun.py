"""Helpers of the suites that run the four services through the local stack (e2e, faults): the
services as processes, polling with deadlines, the lake and the shadows."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@contextmanager
def running_services(
    env: dict[str, str], run_dir: Path, overrides: dict[str, dict[str, str]] | None = None,
    lease_timeout_s: float = 180.0,
) -> Iterator[Running]:
    """The four services as separate processes, started like the demo starts them; yields once
    every KCL consumer renews its leases (a lease left by an earlier run still names its owner,
    so 'held' alone is not enough: its counter must move after this start)."""
    overrides = overrides or {}
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)  # the services' EMF files go here
    bin_dir = Path(sys.executable).parent
    before = lease_counters(env, KCL_APPLICATIONS)
    with Supervisor(run_dir / "logs") as supervisor:
        for name in SERVICES:
            service_env = _service_env(env, name, run_dir)
            service_env.update(overrides.get(name, {}))
            supervisor.start(name, [str(bin_dir / f"railpulse-{name}")], service_env)

        def ready() -> bool:
            return leases_renewed(env, KCL_APPLICATIONS, before)

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
