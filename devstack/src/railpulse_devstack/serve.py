"""`python -m railpulse_devstack.serve <piece>`: one piece of the local stack in the foreground, as
a container's main process (compose.yaml; the `devstack` target of deploy/docker/Dockerfile).

The same code, settings and identities as `railpulse stack up`, which runs the pieces as
background processes on one host; here each piece is its own container, they share the state
folder (`RAILPULSE_STACK_DIR`, a volume: the PKI, the broker's deny file, the cluster's
passwords) and find each other by service name. What differs from the process stack:

- every listener is on all interfaces of its container (compose publishes them on the host's
  loopback only), and PostgreSQL admits the service role from the containers' network
  (`samenet`), still with scram-sha-256 only;
- the broker's certificate also names the host `mosquitto`;
- the service role's password comes from `RAILPULSE_PG_PASSWORD` (the services' DSN carries the
  same; `scripts/compose.sh` generates it once), the superuser's stays in the volume.

Pieces: `init` (PKI, AWS resources, the fleet's things; then exits), `moto`, `broker`,
`postgres`, `iot`. `ready <piece>` answers a health check (exit 0 when it answers).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import NoReturn

import structlog

from railpulse_devstack import _logging, aws, broker, postgres
from railpulse_devstack._secrets import write_private
from railpulse_devstack.config import PRIVILEGED_IDENTITY, StackConfig, load_config
from railpulse_devstack.errors import StackError
from railpulse_devstack.pki import Pki
from railpulse_devstack.things import Registry

__all__ = ["BROKER_HOST", "container_config", "init", "main", "ready"]

logger = structlog.get_logger()

BROKER_HOST = "mosquitto"
"""The broker's name on the containers' network (in its certificate besides localhost)."""
_ALL = "0.0.0.0"


def container_config() -> StackConfig:
    """The stack's config inside a container: state from RAILPULSE_STACK_DIR, standard ports."""
    # Inside a container each piece has its standard port; compose maps them to the host's. One
    # moto serves S3 too (moto_s3_port 0): the compose services name one endpoint.
    return dataclasses.replace(
        load_config(),
        host=_ALL,
        moto_port=4566,
        moto_s3_port=0,
        mqtt_port=8883,
        pg_port=5432,
        iot_data_port=4580,
    )


def _exec(argv: list[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def init(config: StackConfig) -> None:
    """Certificates (CA, the broker's, one per device and the stand-in's), then, once moto
    answers, the streams, queues, buckets, table and Glue database and the fleet as things."""
    pki = Pki(config.pki_dir)
    pki.ensure_ca()
    pki.ensure_server(hosts=(BROKER_HOST,))
    for name in (*config.fleet, PRIVILEGED_IDENTITY):
        pki.ensure_device(name)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    deadline = time.monotonic() + 60
    while not _answers(f"{endpoint}/moto-api/"):
        if time.monotonic() > deadline:
            raise StackError(f"moto did not answer at {endpoint} within 60 s")
        time.sleep(0.5)
    aws.ensure_resources(endpoint)
    Registry(endpoint, pki).ensure_all(config.fleet)
    logger.info("stack.initialised", devices=len(config.fleet), state=str(config.state_dir))


def serve_broker(config: StackConfig) -> NoReturn:
    conf = broker.write_config(config, Pki(config.pki_dir), broker.build_plugin(config))
    _exec(broker.mosquitto_argv(conf))


def serve_postgres(config: StackConfig) -> None:
    """initdb on first start, the server, the service role with RAILPULSE_PG_PASSWORD; then wait
    on the postmaster and stop it (fast shutdown) on SIGTERM."""
    password = os.environ.get("RAILPULSE_PG_PASSWORD", "").strip()
    if not password:
        raise StackError("RAILPULSE_PG_PASSWORD is not set (the service role's password)")
    write_private(postgres.secret_path(config, postgres.USER), password + "\n")
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    postgres.start(config, network="samenet")
    logger.info("postgres.serving", port=config.pg_port)
    while not stopping and postgres.pid(config) is not None:
        time.sleep(0.5)
    if stopping:
        postgres.stop(config)
        return
    raise StackError("PostgreSQL exited; see its log under the state folder's pg/")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _listening(port: int) -> bool:
    """A socket of this container listens on `port` (read from the kernel's tables, not by
    connecting: a bare connection is a log line in mosquitto's and PostgreSQL's logs)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return True
    return False


def ready(piece: str, config: StackConfig) -> bool:
    if piece == "moto":
        return _answers(f"http://127.0.0.1:{config.moto_port}/moto-api/")
    if piece == "iot":
        return _answers(f"http://127.0.0.1:{config.iot_data_port}/healthz")
    if piece == "broker":
        return _listening(config.mqtt_port)
    if piece == "postgres":
        return postgres.pid(config) is not None and _listening(config.pg_port)
    raise StackError(f"no readiness check for {piece}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m railpulse_devstack.serve",
        description="Run one piece of the local stack in the foreground (a container's process).",
    )
    parser.add_argument("piece", choices=["init", "moto", "broker", "postgres", "iot", "ready"])
    parser.add_argument("what", nargs="?", help="for `ready`: the piece to check")
    args = parser.parse_args(argv)
    _logging.configure(json=True)
    config = container_config()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.piece == "ready":
            return 0 if ready(args.what or "", config) else 1
        if args.piece == "init":
            init(config)
        elif args.piece == "moto":
            _exec([sys.executable, "-m", "railpulse_devstack.moto_server",
                   "--host", _ALL, "--port", str(config.moto_port)])  # fmt: skip
        elif args.piece == "broker":
            serve_broker(config)
        elif args.piece == "postgres":
            serve_postgres(config)
        else:  # the IoT stand-in reads the environment compose gives it
            _exec([sys.executable, "-m", "railpulse_devstack.iot"])
    except StackError as err:
        print(f"railpulse_devstack.serve {args.piece}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
