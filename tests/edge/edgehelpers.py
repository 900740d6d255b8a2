"""Helpers for the edge agent's tests: the agent as a process, a reader of what reached Kinesis
`telemetry-raw` (the cuttable TCP proxy, a tunnel, is `tunnel.TcpProxy`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from railpulse_shared.codec import decode_device_message, decode_envelope
from railpulse_shared.contracts import Frame, FrameBatch


@dataclass
class AgentProcess:
    """`python -m railpulse_edge.main` for one train; stdout/stderr to files."""

    thing: str
    env: dict[str, str]
    spool_dir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def spool_path(self) -> Path:
        return self.spool_dir / f"{self.thing}.db"

    @property
    def stdout_path(self) -> Path:
        return self.spool_dir / f"{self.thing}.stdout"

    def start(self) -> None:
        self.runs += 1
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "railpulse_edge.main", "--thing", self.thing,
                "--spool-dir", str(self.spool_dir), *self.args]
        out = self.stdout_path.open("ab")
        err = (self.spool_dir / f"{self.thing}.{self.runs}.log").open("wb")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=err)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self, run: int | None = None) -> str:
        """The agent's log lines: of one run (1-based), or of all runs."""
        if run is not None:
            return (self.spool_dir / f"{self.thing}.{run}.log").read_text()
        return "".join(p.read_text() for p in sorted(self.spool_dir.glob(f"{self.thing}.*.log")))


def agent_env(stack: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**os.environ, **stack, **extra}
    env.setdefault("RAILPULSE_LOG_LEVEL", "info")
    return env


@dataclass(frozen=True)
class Received:
    seq: int
    backfill: bool
    batch: bool
    epoch: int = 0


class TrainStream:
    """Reads every shard of `telemetry-raw` from LATEST and keeps one train's frames in order."""

    def __init__(self, stack: dict[str, str], thing: str) -> None:
        self.kinesis = boto3.client(
            "kinesis", endpoint_url=stack["AWS_ENDPOINT_URL"], region_name=stack["AWS_REGION"],
            aws_access_key_id=stack["AWS_ACCESS_KEY_ID"], aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
        )
        self.stream = stack["RAILPULSE_STREAM_RAW"]
        self.thing = thing
        self._iterators = {
            s["ShardId"]: self.kinesis.get_shard_iterator(
                StreamName=self.stream, ShardId=s["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for s in self.kinesis.list_shards(StreamName=self.stream)["Shards"]
        }
        self.frames: list[Received] = []
        self.messages: list[bytes] = []

    def poll(self) -> None:
        for shard, it in list(self._iterators.items()):
            while True:
                resp = self.kinesis.get_records(ShardIterator=it, Limit=1000)
                it = resp["NextShardIterator"]
                for record in resp["Records"]:
                    self._take(record["Data"])
                if not resp["Records"]:
                    break
            self._iterators[shard] = it

    def _take(self, data: bytes) -> None:
        envelope = decode_envelope(data)
        if envelope.principal != self.thing:
            return
        self.messages.append(envelope.payload)
        message = decode_device_message(envelope.payload)
        if isinstance(message, Frame):
            self.frames.append(Received(message.seq, message.backfill, False, message.epoch))
        elif isinstance(message, FrameBatch):
            self.frames.extend(Received(f.seq, f.backfill, True, f.epoch) for f in message.frames)

    def seqs(self) -> set[int]:
        return {f.seq for f in self.frames}

    def has_all_below(self, n: int) -> bool:
        self.poll()
        return self.seqs() >= set(range(n))


def iot_data_client(stack: dict[str, str]) -> Any:
    return boto3.client(
        "iot-data", endpoint_url=stack["RAILPULSE_IOT_DATA_ENDPOINT"], region_name=stack["AWS_REGION"],
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"], aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
    )


def shadow_document(iot_data: Any, thing: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())
    return doc


def reported(iot_data: Any, thing: str) -> dict[str, Any]:
    try:
        state: dict[str, Any] = shadow_document(iot_data, thing).get("state", {})
    except iot_data.exceptions.ResourceNotFoundException:
        return {}
    return state.get("reported") or {}


def spooled_seqs(path: Path) -> set[int]:
    """The seqs still in a spool (read-only; the agent may be dead or alive)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT seq FROM frames")}
    finally:
        db.close()
