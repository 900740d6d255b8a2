"""Helpers for the console's tests: a console process, a frame pump, deadline waits."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import msgspec
from waiting import free_port, wait_until

from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.config import CommonSettings
from railpulse_shared.contracts import AcceptedFrame, Anomaly, Reading
from railpulse_shared.publish import KinesisPublisher

T = TypeVar("T")

OUTPUT = Path(__file__).resolve().parents[2] / ".local" / "test-output" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]








def aws(env: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


class ConsoleProcess:
    """`railpulse-console` as its own process, on a free loopback port, against the stack."""

    def __init__(self, env: dict[str, str], log: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "RAILPULSE_PORT": str(self.port), **settings}
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "railpulse_console.main"],
            env=full,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=20)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"console exited with {self.proc.returncode}: see {self._log.name}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def frame(train: str, seq: int, ts_ms: int) -> AcceptedFrame:
    """A plausible accepted frame: every catalogued train channel inside its operating range."""
    catalogue = load_catalogue()
    readings: dict[str, Reading] = {}
    for i, channel in enumerate(catalogue.channels.values()):
        if channel.group in ("environment", "device"):
            continue
        low, high = channel.operating
        mid, half = (low + high) / 2, (high - low) / 2
        wave = math.sin(ts_ms / 20_000 + i) * 0.25 + math.sin(ts_ms / 3_100 + 2 * i) * 0.05
        readings[channel.name] = Reading(value=round(mid + half * wave, 3))
    return AcceptedFrame(
        train=train, seq=seq, ts_ms=ts_ms, readings=readings, ingested_ms=ts_ms, received_ms=ts_ms
    )


class FramePump:
    """Puts accepted frames for `trains` on Kinesis `telemetry` every `period_s`, as ingest would."""

    def __init__(self, env: dict[str, str], trains: list[str], period_s: float = 0.5) -> None:
        self.kinesis = aws(env, "kinesis")
        self.stream = env["RAILPULSE_STREAM_TELEMETRY"]
        self.trains = trains
        self.period_s = period_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def backfill(self, seconds: int, step_s: int = 5) -> None:
        """Put the last `seconds` of frames (sensor time in the past) in a few calls."""
        now = int(time.time() * 1000)
        records = [
            {"Data": codec.encode(frame(t, 10_000 + k, now - (seconds - k * step_s) * 1000)),
             "PartitionKey": t}
            for t in self.trains
            for k in range(seconds // step_s)
        ]
        for i in range(0, len(records), 400):
            self.kinesis.put_records(StreamName=self.stream, Records=records[i : i + 400])

    def start(self) -> FramePump:
        self._thread.start()
        return self

    def _run(self) -> None:
        seq = 100_000
        while not self._stop.is_set():
            now = int(time.time() * 1000)
            seq += 1
            self.kinesis.put_records(
                StreamName=self.stream,
                Records=[
                    {"Data": codec.encode(frame(t, seq, now)), "PartitionKey": t}
                    for t in self.trains
                ],
            )
            self.sent += len(self.trains)
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def put_anomaly(env: dict[str, str], anomaly: Anomaly) -> Anomaly:
    """Put an anomaly on Kinesis `events` as the detector's emitter does: the shared codec and
    KinesisPublisher over aiobotocore, partitioned by train. (Not on SQS `alerts`: other tests'
    notifier may read that queue.) Returns it as put: `detected_ms` is stamped once the client
    is open, as in the detector, whose client lives as long as the service."""

    async def emit() -> Anomaly:
        settings = CommonSettings(
            aws_endpoint_url=env["AWS_ENDPOINT_URL"], aws_region=env["AWS_REGION"]
        )
        async with AwsClients(settings).create(
            "kinesis",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ) as kinesis:
            publisher = KinesisPublisher(kinesis, env["RAILPULSE_STREAM_EVENTS"])
            stamped = msgspec.structs.replace(anomaly, detected_ms=int(time.time() * 1000))
            await publisher.put([(stamped.train, codec.encode(stamped))])
            return stamped

    # Its own thread: Playwright's sync API already runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, emit()).result(timeout=30)


@dataclass
class Scene:
    """What the module set up: its trains, the console, and where its extras live."""

    env: dict[str, str]
    run: str
    trains: list[str]
    console: ConsoleProcess
    pump: FramePump
    lease_table: str
    dead_letters: str
    measurements: dict[str, float] = field(default_factory=dict)


def now_ms() -> int:
    return int(time.time() * 1000)
