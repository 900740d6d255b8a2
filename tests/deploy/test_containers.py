"""Each service's image, run exactly as its synthesised task definition says, against the local
stack (marker `containers`: needs Docker; scripts/images.sh builds the images and starts dockerd).

A container gets the task's command, entry point and environment. Only what must point at the
local stack is overridden, and `LOCAL` lists it: the endpoints (AWS_ENDPOINT_URL, S3's own if
the stack has one, the IoT data endpoint), credentials (the task role in AWS), the KCL's shard discovery interval (1 s instead
of 60 s, or the first start waits a minute) and the detector's retrieval: POLLING, because moto
answers enhanced fan-out's SubscribeToShard with HTTP 500 (seen here), so FANOUT gets nothing. Containers use the host's network, so the stack's
127.0.0.1 ports and the EMF agent's 127.0.0.1:25888 are where a task's localhost would be; a
TCP listener there plays the CloudWatch agent sidecar.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_synth import Synth
from stackrun import _descendants, client, wait_for

from railpulse_cli.demo.leases import lease_counters, leases_renewed
from railpulse_deploy.services._base import EMF_AGENT_SINK, STOP_TIMEOUT_S

pytestmark = [pytest.mark.containers, pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]
CHECKSUMS = ROOT / "deploy" / "docker" / "kcl-2.5.8-jars.sha256"
TAG = "local"
# Task family -> Dockerfile target (= image railpulse-<target>:local).
TARGETS = {
    "railpulse-ingest": "ingest",
    "railpulse-detector": "detector",
    "railpulse-notifier": "notifier",
    "railpulse-archiver-telemetry": "archiver",
    "railpulse-archiver-events": "archiver",
}
KCL_FAMILIES = sorted(f for f in TARGETS if f != "railpulse-notifier")
STREAMS = {
    "railpulse-ingest": "telemetry-raw",
    "railpulse-detector": "telemetry",
    "railpulse-archiver-telemetry": "telemetry",
    "railpulse-archiver-events": "events",
}


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def app_container(synth: Synth, family: str) -> dict[str, Any]:
    for task in synth.all_resources("AWS::ECS::TaskDefinition").values():
        props = task["Properties"]
        if props["Family"] == family:
            (app,) = (c for c in props["ContainerDefinitions"] if c["Name"] == "app")
            return app
    raise AssertionError(f"no task definition {family}")


def local_overrides(stack: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    fanout = env.get("RAILPULSE_KCL_RETRIEVAL_MODE") == "FANOUT"
    return ({"RAILPULSE_KCL_RETRIEVAL_MODE": "POLLING"} if fanout else {}) | {
        "AWS_ENDPOINT_URL": stack["AWS_ENDPOINT_URL"],
        **{k: stack[k] for k in ("AWS_ENDPOINT_URL_S3",) if k in stack},
        "AWS_ACCESS_KEY_ID": stack["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": stack["AWS_SECRET_ACCESS_KEY"],
        "RAILPULSE_IOT_DATA_ENDPOINT": stack["RAILPULSE_IOT_DATA_ENDPOINT"],
        "RAILPULSE_KCL_SHARD_SYNC_MS": "1000",
    }


class AgentStandIn:
    """A TCP listener where the task sends EMF (the CloudWatch agent's port): keeps each line."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.server = socket.create_server((host, int(port)), reuse_port=False)
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                with self._lock:
                    self.lines.append(json.loads(line))

    def seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.lines)


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentStandIn]:
    stand_in = AgentStandIn(EMF_AGENT_SINK)
    yield stand_in
    stand_in.server.close()


class Task:
    def __init__(self, family: str, app: dict[str, Any], env: dict[str, str]) -> None:
        self.family, self.app, self.env = family, app, env
        self.name = f"railpulse-test-{family.removeprefix('railpulse-')}"

    def start(self) -> None:
        docker("rm", "-f", self.name, check=False)
        args = ["run", "-d", "--name", self.name, "--network", "host"]
        if self.app.get("ReadonlyRootFilesystem"):
            args += ["--read-only", "--tmpfs", "/tmp"]  # the task's writable /tmp volume
        if self.app.get("EntryPoint"):
            (entry,) = self.app["EntryPoint"]
            args += ["--entrypoint", entry]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        docker(*args, f"railpulse-{TARGETS[self.family]}:{TAG}", *self.app.get("Command", []))

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        return json.loads(docker("inspect", "-f", "{{json .State}}", self.name))  # type: ignore[no-any-return]

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def run_task(
    images: None, synth: Synth, stack: dict[str, str]
) -> Iterator[Any]:
    started: list[Task] = []

    def run(family: str) -> Task:
        app = app_container(synth, family)
        env = {e["Name"]: e["Value"] for e in app.get("Environment", [])}
        assert all(isinstance(v, str) for v in env.values()), env
        task = Task(family, app, env | local_overrides(stack, env))
        task.start()
        started.append(task)
        return task

    yield run
    for task in started:
        task.remove()


def _uids(pid: int) -> dict[int, int]:
    """The real uid of `pid` and each of its descendants."""
    assert pid > 0, "the container is not running"
    found = {}
    for p in [pid, *_descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found[p] = int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])
    return found


@pytest.mark.parametrize("family", KCL_FAMILIES)
def test_a_kcl_task_runs_as_deployed_sends_its_metrics_to_the_agent_and_stops_cleanly(
    run_task: Any, agent: AgentStandIn, stack: dict[str, str], family: str
) -> None:
    before = lease_counters(stack, [family])  # a KCL task's family is its application name
    task = run_task(family)
    # Started as the task says: the daemon takes (or renews) its leases and starts a processor
    # per shard, which logs to stderr.
    wait_for(lambda: leases_renewed(stack, [family], before) or not task.state()["Running"],
             150, f"{family} to renew its leases")
    assert task.state()["Running"], task.logs()[-3000:]
    wait_for(lambda: len(_uids(task.state()["Pid"])) > 2, 90, f"{family}'s record processors")
    uids = _uids(task.state()["Pid"])
    assert uids and 0 not in uids.values(), uids  # the daemon and every processor: non-root
    # A record that is no event: the processor dead-letters it and counts it, and its EMF
    # arrives where the task sends it (the agent sidecar's port).
    seen = len(agent.seen())
    client(stack, "kinesis").put_record(
        StreamName=STREAMS[family], Data=b"\x00 not an event", PartitionKey=family
    )
    wait_for(lambda: any(line.get("service") for line in agent.seen()[seen:]), 120,
             f"{family}'s EMF at {EMF_AGENT_SINK}")
    started = time.monotonic()
    docker("stop", "-t", str(STOP_TIMEOUT_S), task.name, timeout=STOP_TIMEOUT_S + 30)
    took = time.monotonic() - started
    state, logs = task.state(), task.logs()
    assert took < STOP_TIMEOUT_S - 1, f"stopped only by SIGKILL after {took:.0f} s"
    assert state["ExitCode"] in (0, 143), (state, logs[-3000:])  # 143: the JVM after SIGTERM
    assert "Encountered an error during shutdown" not in logs, logs[-3000:]


def test_the_notifier_runs_as_deployed_and_stops_cleanly(run_task: Any) -> None:
    task = run_task("railpulse-notifier")
    wait_for(lambda: "started" in task.logs() or not task.state()["Running"], 60,
             "the notifier to start")
    assert task.state()["Running"], task.logs()[-3000:]
    assert 0 not in _uids(task.state()["Pid"]).values()
    started = time.monotonic()
    docker("stop", "-t", str(STOP_TIMEOUT_S), task.name, timeout=STOP_TIMEOUT_S + 30)
    assert time.monotonic() - started < STOP_TIMEOUT_S - 1
    assert task.state()["ExitCode"] == 0, task.logs()[-3000:]


@pytest.mark.parametrize("target", ["ingest", "detector", "archiver"])
def test_the_kcl_jars_in_the_image_are_the_pinned_ones(images: None, target: str) -> None:
    listing = docker(
        "run", "--rm", "--entrypoint", "python3", f"railpulse-{target}:{TAG}", "-c",
        "import hashlib, json; from railpulse_shared.multilang import jars_dir; "
        "print(json.dumps({p.name: hashlib.sha256(p.read_bytes()).hexdigest() "
        "for p in jars_dir().glob('*.jar')}))",
    )
    pinned = dict(reversed(line.split()) for line in CHECKSUMS.read_text().splitlines())
    assert json.loads(listing) == pinned


def test_the_archiver_task_ends_with_an_error_when_its_daemon_dies(run_task: Any) -> None:
    """A KCL daemon that dies unasked (OOM-killed, crashed) ends the task non-zero, so ECS
    replaces it: an archiver that ran on without its daemon would archive nothing."""
    task = run_task("railpulse-archiver-telemetry")

    def daemon() -> int | None:
        state = task.state()
        assert state["Running"], task.logs()[-3000:]
        for pid in _descendants(state["Pid"]):
            try:
                if b"MultiLangDaemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    jvm = wait_for(daemon, 90, "the archiver's KCL daemon")
    os.kill(jvm, signal.SIGKILL)
    wait_for(lambda: not task.state()["Running"], 60, "the archiver task to end")
    assert task.state()["ExitCode"] == 1, task.logs()[-3000:]
    assert '"daemon_exited"' in task.logs()
