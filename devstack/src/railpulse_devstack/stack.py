"""Start, stop and inspect the local stack.

Components (each a detached process with a pid file under `<state>/run/`, its log under
`<state>/logs/`):

| name     | what                                   | default port |
|----------|----------------------------------------|--------------|
| moto     | moto's AWS APIs via hypercorn (h2c)    | 4566 |
| s3       | moto for S3 alone                      | 4567 |
| broker   | mosquitto, mutual TLS                  | 8883 |
| postgres | PostgreSQL 15                          | 5433 |
| iot      | IoT Core stand-in: rules + shadows     | 4580 (HTTP; MQTT client of the broker) |

S3 has a moto of its own, as it is a service of its own in AWS: moto serves every request of one
process under one GIL, so a detector snapshot's upload (tens of MB) or a listing of the lake held
up the Kinesis reads and writes of every frame behind it (issue 18).

`up()` is idempotent: what runs is left alone, what is missing is started, resources and device
registrations are ensured every time. A port held by something else stops `up()` before anything
starts, with a `PortInUseError` naming the port and its env var. `down()` stops whatever runs,
whatever state `up()` left.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from railpulse_devstack import aws, broker, postgres
from railpulse_devstack._secrets import kept_secret
from railpulse_devstack.config import PRIVILEGED_IDENTITY, StackConfig, load_config
from railpulse_devstack.env import write_env_file
from railpulse_devstack.errors import ProcessStartError, StackError
from railpulse_devstack.pki import DeviceCert, Pki
from railpulse_devstack.ports import ensure_free, is_listening, wait_listening
from railpulse_devstack.procs import PidFile, spawn, stop_pid
from railpulse_devstack.things import Registry

__all__ = [
    "ComponentStatus",
    "UpResult",
    "down",
    "ensure_device",
    "ensure_devices",
    "load_config",
    "status",
    "up",
]

logger = structlog.get_logger()

_READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    pid: int | None
    port: int
    listening: bool
    log: Path

    @property
    def running(self) -> bool:
        return self.pid is not None and self.listening


@dataclass(slots=True)
class UpResult:
    seconds: float
    started: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _pidfile(config: StackConfig, name: str) -> PidFile:
    markers = {
        "moto": "railpulse_devstack.moto_server",
        "s3": "railpulse_devstack.moto_server",
        "broker": str(config.state_dir / "broker" / "mosquitto.conf"),
        "iot": "railpulse_devstack.iot",
    }
    return PidFile(config.run_dir / f"{name}.pid", markers[name])


def _port_of(config: StackConfig, name: str) -> int:
    return {
        "moto": config.moto_port,
        "s3": config.moto_s3_port,
        "broker": config.mqtt_port,
        "postgres": config.pg_port,
        "iot": config.iot_data_port,
    }[name]


_ENV_VARS = {
    "moto": "RAILPULSE_MOTO_PORT",
    "s3": "RAILPULSE_MOTO_S3_PORT",
    "broker": "RAILPULSE_MQTT_PORT",
    "postgres": "RAILPULSE_PG_PORT",
    "iot": "RAILPULSE_IOT_DATA_PORT",
}
_LABELS = {
    "moto": "moto (AWS APIs)",
    "s3": "moto (S3)",
    "broker": "mosquitto (MQTT over mutual TLS)",
    "postgres": "PostgreSQL",
    "iot": "IoT data-plane stand-in",
}


def _names(config: StackConfig) -> tuple[str, ...]:
    return (
        ("moto", "s3", "broker", "postgres", "iot")
        if config.moto_s3_port
        else ("moto", "broker", "postgres", "iot")
    )


def _pid(config: StackConfig, name: str) -> int | None:
    if name == "postgres":
        return postgres.pid(config)
    return _pidfile(config, name).running_pid()


def status(config: StackConfig | None = None) -> list[ComponentStatus]:
    config = config or load_config()
    return [
        ComponentStatus(
            name=name,
            pid=_pid(config, name),
            port=_port_of(config, name),
            listening=is_listening(config.host, _port_of(config, name)),
            log=config.logs_dir / f"{name if name != 'broker' else 'mosquitto'}.log",
        )
        for name in _names(config)
    ]


def base_env(config: StackConfig, pki: Pki) -> dict[str, str]:
    s3 = {"AWS_ENDPOINT_URL_S3": f"http://{config.host}:{config.moto_s3_port}"}
    return {
        "AWS_ENDPOINT_URL": f"http://{config.host}:{config.moto_port}",
        **(s3 if config.moto_s3_port else {}),
        "AWS_REGION": aws.REGION,
        "AWS_DEFAULT_REGION": aws.REGION,
        "AWS_ACCESS_KEY_ID": aws.ACCESS_KEY_ID,
        # moto takes any credentials; the IoT stand-in's HTTP API checks signatures made with
        # these, so the secret is the stack's own, generated at first start.
        "AWS_SECRET_ACCESS_KEY": kept_secret(
            config.state_dir / "secrets" / "aws-secret-access-key"
        ),
        "RAILPULSE_IOT_DATA_ENDPOINT": f"http://{config.host}:{config.iot_data_port}",
        "RAILPULSE_MQTT_HOST": config.host,
        "RAILPULSE_MQTT_PORT": str(config.mqtt_port),
        "RAILPULSE_CA_FILE": str(pki.ca_cert_path),
        "RAILPULSE_CERTS_DIR": str(pki.devices_dir),
        "RAILPULSE_IOT_IDENTITY": PRIVILEGED_IDENTITY,
        "RAILPULSE_PG_DSN": postgres.dsn(config),
        "RAILPULSE_STACK_DIR": str(config.state_dir),
        "RAILPULSE_STACK_LOGS": str(config.logs_dir),
        "RAILPULSE_FLEET": ",".join(config.fleet),
    }


def _wait(what: str, check: Callable[[], bool], deadline: float, log: Path) -> None:
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    if not check():
        raise ProcessStartError(f"{what} was not ready within {_READY_TIMEOUT:.0f} s; see {log}")


def _moto_answers(endpoint: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            # Not /moto-api/data.json: it serialises every object moto ever made (each SQS
            # message, deleted or not), so after a few benchmarks it takes longer than the timeout.
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return check


def _iot_ready(endpoint: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"{endpoint}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return check


def _moto_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "railpulse_devstack.moto_server",
        "--host",
        host,
        "--port",
        str(port),
    ]


def _spawn(
    config: StackConfig, name: str, argv: list[str], env: dict[str, str] | None = None
) -> int:
    log = config.logs_dir / f"{name if name != 'broker' else 'mosquitto'}.log"
    pid = spawn(argv, log=log, env=env, cwd=config.root)
    _pidfile(config, name).write(pid)
    logger.info("stack.spawned", component=name, pid=pid, log=str(log))
    return pid


def up(config: StackConfig | None = None) -> UpResult:
    """Start whatever is not running and wait until the whole stack is ready."""
    config = config or load_config()
    t0 = time.monotonic()
    deadline = t0 + _READY_TIMEOUT
    for d in (config.state_dir, config.logs_dir, config.run_dir):
        d.mkdir(parents=True, exist_ok=True)

    with _exclusive(config):
        running = {name: _pid(config, name) is not None for name in _names(config)}
        for name in running:
            if not running[name]:
                ensure_free(_LABELS[name], config.host, _port_of(config, name), _ENV_VARS[name])

        result = UpResult(seconds=0.0)
        try:
            _up(config, running, result, deadline)
        except BaseException:
            for name in reversed(result.started):
                _stop(config, name)
            raise
    result.seconds = time.monotonic() - t0
    return result


@contextlib.contextmanager
def _exclusive(config: StackConfig) -> Iterator[None]:
    """Serialise up/down on one state folder (two test sessions may share a stack)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.state_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _up(config: StackConfig, running: dict[str, bool], result: UpResult, deadline: float) -> None:
    pki = Pki(config.pki_dir)
    pki.ensure_ca()
    pki.ensure_server()
    env = base_env(config, pki)
    endpoint = env["AWS_ENDPOINT_URL"]
    s3_endpoint = env.get("AWS_ENDPOINT_URL_S3", endpoint)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        pg_future = None
        if not running["postgres"]:
            pg_future = pool.submit(postgres.start, config)
            result.started.append("postgres")
        for name in ("moto", "s3"):
            if not running.get(name, True):
                _spawn(config, name, _moto_argv(config.host, _port_of(config, name)))
                result.started.append(name)
        certs = pool.submit(
            lambda: [pki.ensure_device(n) for n in (*config.fleet, PRIVILEGED_IDENTITY)]
        )
        if not running["broker"]:
            conf = broker.write_config(config, pki, broker.build_plugin(config))
            _spawn(config, "broker", broker.mosquitto_argv(conf))
            result.started.append("broker")
        certs.result()

        _wait("moto", _moto_answers(endpoint), deadline, config.logs_dir / "moto.log")
        if "s3" in running:
            _wait("moto (S3)", _moto_answers(s3_endpoint), deadline, config.logs_dir / "s3.log")
        # Devices issued earlier (e.g. a simulator's extra trains) are registered again after a
        # moto restart, which forgets the IoT registry.
        devices = dict.fromkeys([*config.fleet, *pki.devices()])
        devices.pop(PRIVILEGED_IDENTITY, None)
        registered = pool.submit(Registry(endpoint, pki).ensure_all, list(devices))
        queue_urls = aws.ensure_resources(endpoint, s3_endpoint)
        registered.result()
        env.update(aws.resource_env(queue_urls))
        write_env_file(config.env_file, env)

        if not wait_listening(config.host, config.mqtt_port, deadline):
            raise ProcessStartError(
                f"mosquitto is not listening on {config.mqtt_port}; see {config.logs_dir / 'mosquitto.log'}"
            )
        if not running["iot"]:
            _spawn(
                config,
                "iot",
                [sys.executable, "-m", "railpulse_devstack.iot"],
                env={**os.environ, **env},
            )
            result.started.append("iot")
        if pg_future is not None:
            pg_future.result()
        if not running["moto"] or not running.get("s3", True):
            # moto keeps its state in memory: the lake, the streams and their sequence numbers
            # start over, so the warehouse loaded from the old lake must too (its ledger names
            # lake objects by key, and a new lake reuses the keys).
            postgres.recreate_database(config)
    _wait(
        "the IoT stand-in",
        _iot_ready(env["RAILPULSE_IOT_DATA_ENDPOINT"]),
        deadline,
        config.logs_dir / "iot.log",
    )
    # The stand-in is subscribed: have the broker write its persistence file now, so that after a
    # crash it restores the stand-in's session and queues telemetry for it until it is back.
    broker.persist(_pidfile(config, "broker").running_pid())
    result.env = env


def _stop(config: StackConfig, name: str) -> bool:
    if name == "postgres":
        return postgres.stop(config)
    pidfile = _pidfile(config, name)
    pid = pidfile.running_pid()
    stopped = False
    if pid is not None:
        stopped = stop_pid(pid)
        if not stopped:
            raise StackError(f"could not stop {name} (pid {pid})")
    pidfile.remove()
    return stopped


def down(config: StackConfig | None = None) -> list[str]:
    """Stop every component that runs; returns the names of those stopped."""
    config = config or load_config()
    stopped: list[str] = []
    errors: list[str] = []
    with _exclusive(config):
        for name in ("iot", "broker", "moto", "s3", "postgres"):
            try:
                if _stop(config, name):
                    stopped.append(name)
            except (StackError, OSError) as err:
                errors.append(str(err))
    if errors:
        raise StackError("; ".join(errors))
    return stopped


def ensure_devices(names: Iterable[str], config: StackConfig | None = None) -> list[DeviceCert]:
    """Each device's certificate and key (issued on first use, ~1 ms each), registered as a thing
    in the running stack's IoT registry (~30 ms each; 200 new devices take about 6 s). Without a
    running stack only the certificates are made; the next `up` registers them."""
    config = config or load_config()
    pki = Pki(config.pki_dir)
    if _pid(config, "moto") is None:
        return [pki.ensure_device(n) for n in names]
    return Registry(f"http://{config.host}:{config.moto_port}", pki).ensure_all(names)


def ensure_device(name: str, config: StackConfig | None = None) -> DeviceCert:
    """One device's certificate and key, registered as a thing; see `ensure_devices`."""
    return ensure_devices([name], config)[0]
