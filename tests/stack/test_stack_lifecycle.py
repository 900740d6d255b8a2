"""`railpulse stack up` is idempotent and refuses a taken port with a clear message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from waiting import free_port

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import load_config
from railpulse_devstack.env import stack_env
from railpulse_devstack.errors import PortInUseError

pytestmark = pytest.mark.stack


def test_up_twice_is_harmless(stack: dict[str, str]) -> None:
    config = load_config()
    before = {s.name: s.pid for s in devstack.status(config)}
    result = devstack.up(config)
    assert result.started == []
    after = devstack.status(config)
    assert all(s.running for s in after)
    assert {s.name: s.pid for s in after} == before
    assert stack_env(config) == stack


def test_status_command_lists_every_component(stack: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "railpulse_cli.main", "stack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for name, port in (
        ("moto", 4566),
        ("s3", 4567),
        ("broker", 8883),
        ("postgres", 5433),
        ("iot", 4580),
    ):
        line = next(x for x in out.stdout.splitlines() if x.startswith(name))
        assert "running" in line
        if os.environ.get(devstack._ENV_VARS[name]) is None:
            assert str(port) in line


def test_taken_port_gives_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {
            **os.environ,
            "RAILPULSE_STACK_DIR": str(tmp_path / "stack"),
            "RAILPULSE_MQTT_PORT": str(port),
            "RAILPULSE_MOTO_PORT": "0",
            "RAILPULSE_MOTO_S3_PORT": "0",
            "RAILPULSE_PG_PORT": "0",
            "RAILPULSE_IOT_DATA_PORT": "0",
        }
        config = load_config(env)
        with pytest.raises(PortInUseError) as err:
            devstack.up(config)
        assert err.value.port == port
        assert f"port {port}" in str(err.value) and "RAILPULSE_MQTT_PORT" in str(err.value)
        assert not any(s.pid for s in devstack.status(config)), "nothing may start"

        out = subprocess.run(
            [sys.executable, "-m", "railpulse_cli.main", "stack", "up"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert out.returncode == 1
        assert f"port {port}" in out.stderr and "RAILPULSE_MQTT_PORT=<port>" in out.stderr





def test_cli_up_detaches_and_down_stops_a_half_running_stack(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """A second stack on other ports: `up` exits leaving its processes running; a moto that died
    (its lake and streams gone) comes back with an empty warehouse, whose ledger named the old
    lake's objects; `down` stops everything even after one process died on its own."""
    env = {
        **os.environ,
        "RAILPULSE_STACK_DIR": str(tmp_path / "stack"),
        "RAILPULSE_MOTO_PORT": str(free_port()),
        "RAILPULSE_MOTO_S3_PORT": str(free_port()),
        "RAILPULSE_MQTT_PORT": str(free_port()),
        "RAILPULSE_PG_PORT": str(free_port()),
        "RAILPULSE_IOT_DATA_PORT": str(free_port()),
        "RAILPULSE_FLEET": "train-001..train-002",
    }
    cli = [sys.executable, "-m", "railpulse_cli.main", "stack"]
    config = load_config(env)
    try:
        up = subprocess.run(
            [*cli, "up"], capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert up.returncode == 0, up.stderr
        assert "stack ready in" in up.stdout
        assert all(s.running for s in devstack.status(config)), "processes must outlive `up`"
        assert set(stack_env(config)["RAILPULSE_FLEET"].split(",")) == {"train-001", "train-002"}

        dsn = stack_env(config)["RAILPULSE_PG_DSN"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE archive_ledger (object_key text)")
        pids = {s.name: s.pid for s in devstack.status(config)}
        assert pids["moto"] is not None
        os.kill(pids["moto"], 9)
        again = subprocess.run(
            [*cli, "up"], capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert again.returncode == 0, again.stderr
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('archive_ledger')").fetchone() == (None,)
        assert {s.name: s.pid for s in devstack.status(config)}["postgres"] == pids["postgres"]

        iot = next(s for s in devstack.status(config) if s.name == "iot")
        assert iot.pid is not None
        os.kill(iot.pid, 9)

        down = subprocess.run(
            [*cli, "down"], capture_output=True, text=True, timeout=120, env=env, check=False
        )
        assert down.returncode == 0, down.stderr
        assert not any(s.pid for s in devstack.status(config))
        status = subprocess.run(
            [*cli, "status"], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert status.returncode == 3 and "stopped" in status.stdout
    finally:
        devstack.down(config)
