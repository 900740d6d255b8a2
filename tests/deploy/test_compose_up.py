"""compose.yaml up end to end (marker `containers`: Docker and the images, which scripts/images.sh
builds): the stack's pieces and the four services in containers, through Debian's docker-compose
(scripts/compose.sh). A train's frames over MQTT with its own certificate go through ingest, the
detector, the notifier and the archiver: the critical reading's alert reaches the train's shadow,
the frames and the alert are in the lake, and the archiver's load puts the frames in the
warehouse (PostgreSQL, as the service role). Then `down -v` leaves nothing behind.

The project has its own name and free host ports, so it runs beside the session's process stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from stackrun import lake_rows, mqtt_links, open_alerts, wait_for

from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_edge.frames import build_frame

# Up, four JVMs starting on two shared cores, then the archiver's 30 s flush: minutes, not seconds.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "scripts" / "compose.sh"
# The KCL applications of the compose services (the archiver runs both of its daemons).
APPLICATIONS = [
    "railpulse-ingest",
    "railpulse-detector",
    "railpulse-archiver-telemetry",
    "railpulse-archiver-events",
]
TRAIN, CALM = "train-001", "train-002"  # in compose's default fleet: certificates and things
FRAMES, HOT_SEQ = 10, 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Compose:
    def __init__(self, workdir: Path) -> None:
        self.project = f"railpulse-test-{uuid.uuid4().hex[:8]}"
        self.ports = {
            name: _free_port()
            for name in ("MOTO", "MQTT", "PG", "IOT_DATA")
        }
        self.env_file = workdir / "compose.env"
        self.secret = secrets.token_urlsafe(32)
        self.pg_password = secrets.token_urlsafe(32)
        self.env_file.write_text(
            f"RAILPULSE_AWS_SECRET={self.secret}\nRAILPULSE_PG_PASSWORD={self.pg_password}\n"
        )
        self.pki = workdir / "pki"

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "RAILPULSE_COMPOSE_ENV": str(self.env_file),
            "RAILPULSE_COMPOSE_BUILD": "0",  # the `images` fixture built them
            **{f"RAILPULSE_{k}_PORT": str(v) for k, v in self.ports.items()},
        }
        return subprocess.run([str(COMPOSE), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def states(self) -> dict[str, dict[str, Any]]:
        ids = self.run("ps", "-q", "-a").stdout.split()
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c["State"]
                for c in json.loads(out)}  # fmt: skip

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60").stdout

    def host_env(self) -> dict[str, str]:
        """What a client on the host uses: the published ports, the PKI copied out."""
        return {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['MOTO']}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "RAILPULSE_IOT_DATA_ENDPOINT": f"http://127.0.0.1:{self.ports['IOT_DATA']}",
            "RAILPULSE_MQTT_HOST": "127.0.0.1",
            "RAILPULSE_MQTT_PORT": str(self.ports["MQTT"]),
            "RAILPULSE_CA_FILE": str(self.pki / "ca.crt"),
            "RAILPULSE_CERTS_DIR": str(self.pki / "devices"),
            "RAILPULSE_BUCKET_LAKE": "railpulse-lake",
            # The service role, as the services connect (no superuser, a password).
            "RAILPULSE_PG_DSN": f"postgresql://railpulse:{self.pg_password}@127.0.0.1:"
            f"{self.ports['PG']}/railpulse",
        }


@pytest.fixture(scope="module")
def compose(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    stack = Compose(tmp_path_factory.mktemp("compose"))
    try:
        up = stack.run("up", "-d")
        assert up.returncode == 0, f"{up.stderr[-3000:]}\n{stack.logs()}"
        # The PKI the init piece made, for the host's MQTT client (the volume is the stack's).
        init = stack.run("ps", "-q", "-a", "init").stdout.strip()
        subprocess.run(["docker", "cp", f"{init}:/stack/pki", str(stack.pki)], check=True)
        yield stack
    finally:
        down = stack.run("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr[-2000:]


def _readings(seq: int, hot: bool) -> dict[str, float]:
    readings = {f"bearing_temp_{i}": 40.0 + i + 0.1 * seq for i in range(1, 9)}
    readings |= {f"motor_current_{i}": 300.0 + 5 * i + seq for i in range(1, 5)}
    if hot and seq == HOT_SEQ:
        readings["bearing_temp_3"] = 130.0  # past the critical limit (120 degC)
    return readings


async def _publish(env: dict[str, str], start_ms: int) -> None:
    async with mqtt_links(env, [TRAIN, CALM]) as links:
        for seq in range(1, FRAMES + 1):
            for train, link in links.items():
                body = build_frame(train, seq, start_ms + seq * 1000, _readings(seq, train == TRAIN))
                await asyncio.wait_for(link.publish(f"trains/{train}/telemetry", body).done, 15)


def test_compose_up_runs_a_trains_frames_end_to_end(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose.host_env()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(key, env[key])  # the lake's reader (DuckDB) takes them from here
    states = compose.states()
    assert states["init"]["ExitCode"] == 0 and not states["init"]["Running"], states["init"]
    running = {"moto", "mosquitto", "postgres", "iot", "ingest", "detector", "notifier", "archiver"}
    assert {s for s, st in states.items() if st["Running"]} == running, compose.logs()

    def consuming() -> bool:
        dead = [s for s, st in compose.states().items() if s != "init" and not st["Running"]]
        assert not dead, f"{dead} exited:\n{compose.logs()}"
        return leases_renewed(env, APPLICATIONS, before)

    before = lease_counters(env, APPLICATIONS)
    wait_for(consuming, 240, "the compose services' KCL consumers to take their leases", every=2)

    start_ms = int(time.time() * 1000) - (FRAMES + 1) * 1000
    asyncio.run(_publish(env, start_ms))

    def raised() -> list[dict[str, Any]] | None:
        alerts = [a for a in open_alerts(env, TRAIN) if a["alert_key"] == "bearing_temp_3"]
        return alerts or None

    alerts = wait_for(raised, 120, f"the critical bearing alert in {TRAIN}'s shadow")
    assert alerts[0]["severity"] == 3 and alerts[0]["category"] == "limit", alerts
    assert open_alerts(env, CALM) == []

    def archived() -> tuple[int, int] | None:
        frames = lake_rows(env, "SELECT count(DISTINCT (train, seq)) FROM telemetry "
                                "WHERE train IN (?, ?)", [TRAIN, CALM])[0][0]  # fmt: skip
        hot = lake_rows(env, "SELECT count(*) FROM alerts WHERE train = ? AND alert_key = ?",
                        [TRAIN, "bearing_temp_3"])[0][0]  # fmt: skip
        return (frames, hot) if frames == 2 * FRAMES and hot >= 1 else None

    wait_for(archived, 180, "both trains' frames and the alert in the lake", every=2)

    def warehoused() -> int | None:  # the archiver's periodic load (every 30 s)
        try:
            with psycopg.connect(env["RAILPULSE_PG_DSN"]) as conn:
                row = conn.execute("SELECT count(DISTINCT (train, seq)) FROM telemetry "
                                   "WHERE train = ANY(%s)", [[TRAIN, CALM]]).fetchone()  # fmt: skip
        except psycopg.errors.UndefinedTable:
            return None  # no load has run yet
        return 2 * FRAMES if row and row[0] == 2 * FRAMES else None

    wait_for(warehoused, 120, "both trains' frames in the warehouse", every=2)
