"""Harness of the infrastructure fault tests (`test_infra*.py`): real parts, faults from outside.

- `Trains`: real edge agents (`railpulse_edge.agent.EdgeAgent`: SQLite spool, QoS 1 link with its
  own certificate, backfill lane, shadow sync) in one background event loop, so the test thread
  can kill things and poll with deadlines while the trains keep sampling. A train may reach the
  broker through a `tunnel.TcpProxy` and may run on a skewed clock.
- `SteadySource`: a train's readings in one steady regime with seeded noise, with a persistent
  shift or a one-off value on demand (the anomalies the tests plant).
- `kill_broker`: mosquitto dies by SIGKILL; `railpulse_devstack.stack.up` brings it back with its
  own configuration and TLS.
- `S3FaultProxy`: an HTTP reverse proxy in front of moto, for the archiver's S3 traffic only
  (`AWS_ENDPOINT_URL_S3`): it fails the lake's object writes for a window, or holds a flush's
  commit so the test can kill the archiver between upload and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from stackrun import wait_for

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import StackConfig
from railpulse_devstack.procs import alive
from railpulse_edge.agent import AgentConfig, EdgeAgent
from railpulse_edge.link import LinkConfig
from railpulse_edge.sources import Sample, SensorSource
from railpulse_edge.spool import Spool

__all__ = [
    "CHANNELS",
    "S3FaultProxy",
    "SteadySource",
    "Trains",
    "kill_broker",
]

T = TypeVar("T")

BEARINGS = [f"bearing_temp_{i}" for i in range(1, 9)]
MOTORS = [f"motor_current_{i}" for i in range(1, 5)]
CHANNELS = len(BEARINGS) + len(MOTORS)
"""Readings per frame of a `SteadySource` (speed travels as the frame's `speed_kmh`)."""


class SteadySource:
    """A train cruising at 80 km/h: bearings near 45 degC, traction currents near 300 A, seeded
    noise well inside every operating range (no limit or sensor-fault rule can fire on it)."""

    def __init__(self, thing: str) -> None:
        self._rng = random.Random(thing)
        self.offsets: dict[str, float] = {}
        """Persistent shifts per channel (a regime change), set from the test thread."""
        self._once: dict[str, float] = {}
        self._lock = threading.Lock()

    def once(self, channel: str, value: float) -> None:
        """The next sample reads `value` on `channel` (a one-frame excursion)."""
        with self._lock:
            self._once[channel] = value

    def read(self, now_s: float) -> Sample:
        rng = self._rng
        readings = {c: 45.0 + rng.gauss(0.0, 0.3) for c in BEARINGS}
        readings |= {c: 300.0 + rng.gauss(0.0, 3.0) for c in MOTORS}
        with self._lock:
            once, self._once = self._once, {}
        for channel, delta in self.offsets.items():
            readings[channel] += delta
        readings.update(once)
        return Sample(readings, speed_kmh=80.0)


class Trains:
    """Edge agents in a background event loop (awscrt calls back on its own threads; the agents
    live on this loop). `add` starts one; `stop_sampling` ends its sensor loop while its link and
    backfill keep running; `close` drains and stops all of them and closes their spools."""

    def __init__(self, env: dict[str, str], spool_dir: Path) -> None:
        self.env = env
        self.spool_dir = spool_dir
        self.agents: dict[str, EdgeAgent] = {}
        self._sampling: dict[str, asyncio.Event] = {}
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="trains", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the trains' loop (spools and agents are used from that thread only)."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def add(
        self, name: str, source: SensorSource, *, rate_hz: float, port: int | None = None,
        clock: Callable[[], float] = time.time, backfill_rate: float = 5.0,
        backfill_max_bytes: int = 20 * 1024,
    ) -> EdgeAgent:
        return self.run(self._add(name, source, rate_hz, port, clock, backfill_rate,
                                  backfill_max_bytes))

    async def _add(
        self, name: str, source: SensorSource, rate_hz: float, port: int | None,
        clock: Callable[[], float], backfill_rate: float, backfill_max_bytes: int,
    ) -> EdgeAgent:
        env, certs = self.env, Path(self.env["RAILPULSE_CERTS_DIR"])
        if self._stop is None:
            self._stop = asyncio.Event()
        agent = EdgeAgent(
            AgentConfig(thing=name, topic=f"trains/{name}/telemetry", backfill_rate=backfill_rate,
                        backfill_max_bytes=backfill_max_bytes),
            LinkConfig(thing=name, host=env["RAILPULSE_MQTT_HOST"],
                       port=port or int(env["RAILPULSE_MQTT_PORT"]), ca_file=Path(env["RAILPULSE_CA_FILE"]),
                       cert_file=certs / f"{name}.crt", key_file=certs / f"{name}.key", client_id=name,
                       # A short cap keeps the test's reconnects prompt (production: 60 s).
                       reconnect_cap_s=4.0, publish_timeout_s=10.0),
            Spool(self.spool_dir / f"{name}.db", synchronous="NORMAL"),
            clock=clock,
        )
        sampling = asyncio.Event()
        self.agents[name] = agent
        self._sampling[name] = sampling
        self._tasks.append(asyncio.create_task(agent.run(self._stop), name=f"{name}-agent"))
        self._tasks.append(asyncio.create_task(agent.run_source(source, rate_hz, sampling),
                                               name=f"{name}-sampling"))
        return agent

    def stop_sampling(self, *names: str) -> None:
        for name in names or tuple(self._sampling):
            self.loop.call_soon_threadsafe(self._sampling[name].set)

    def generated(self, name: str) -> set[int]:
        """Every seq the train's spool allocated (a frame is spooled before it is published)."""
        return set(range(self.call(lambda: self.agents[name].spool.next_seq)))

    def pending(self, name: str) -> int:
        return self.call(lambda: len(self.agents[name].spool))

    def wait_drained(self, names: Iterable[str], timeout: float) -> None:
        """Until every named train is online with an empty spool (all frames acknowledged)."""
        names = list(names)
        wait_for(lambda: all(self.agents[n].link.connected.is_set() and self.pending(n) == 0
                             for n in names), timeout, f"the spools of {names} to drain")

    def close(self) -> None:
        async def stop_all() -> None:
            for event in self._sampling.values():
                event.set()
            if self._stop is not None:
                self._stop.set()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for agent in self.agents.values():
                agent.spool.close()

        try:
            self.run(stop_all(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def kill_broker(config: StackConfig) -> int:
    """SIGKILL mosquitto (no goodbye to its clients, no persistence written); returns its pid."""
    pid = next(c.pid for c in devstack.status(config) if c.name == "broker")
    assert pid is not None, "the broker is not running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, "mosquitto to die")
    return pid


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "upgrade"})
_INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                   b"<Message>We encountered an internal error. Please try again.</Message></Error>")


class S3FaultProxy:
    """HTTP/1.1 reverse proxy to moto for one client's S3 traffic, with two faults:

    - `fail_writes(prefix)`: every PUT of an object whose key starts with `prefix` gets S3's 500
      InternalError (retryable) until `heal()`; reads and other writes pass.
    - `hold_commits(stream)`: a PUT of the stream's shard manifest that commits a flush (the one
      without `pending`, written after the flush's objects) is held unanswered until `release()`,
      and then fails: the flush's objects are in the lake, its commit is not.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.counts: Counter[str] = Counter()
        """`failed`, `held`, and `put:<first key segment>` for writes that went through."""
        self._fail_prefix: str | None = None
        self._hold_stream: str | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the archiver logs its own view of every failure

            def do_GET(self) -> None:
                proxy._forward(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True).start()

    def fail_writes(self, prefix: str) -> None:
        with self._lock:
            self._fail_prefix = prefix

    def heal(self) -> None:
        with self._lock:
            self._fail_prefix = None

    def hold_commits(self, stream: str) -> None:
        self._release.clear()
        with self._lock:
            self._hold_stream = stream

    def release(self) -> None:
        with self._lock:
            self._hold_stream = None
        self._release.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        body = _read_body(request)
        key = urlsplit(request.path).path.lstrip("/").partition("/")[2]
        with self._lock:
            fail, hold = self._fail_prefix, self._hold_stream
        if request.command == "PUT" and key:
            if fail is not None and key.startswith(fail):
                self.counts["failed"] += 1
                _reply(request, 500, {"Content-Type": "application/xml"}, _INTERNAL_ERROR)
                return
            if hold is not None and key.startswith(f"_archiver/{hold}/") and b'"pending"' not in body:
                self.counts["held"] += 1
                self._release.wait(300)
                _reply(request, 500, {"Content-Type": "application/xml"}, _INTERNAL_ERROR)
                return
            self.counts[f"put:{key.partition('/')[0]}"] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            conn.request(request.command, request.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            # The body is relayed whole: its length replaces any framing upstream chose (a HEAD
            # keeps the length of the object it describes).
            framing = {"transfer-encoding"} | ({"content-length"} if request.command != "HEAD" else set())
            out = {k: v for k, v in response.getheaders()
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in framing}
        finally:
            conn.close()
        _reply(request, response.status, out, data)


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body as sent (a chunked body stays chunk-encoded: it is forwarded as is)."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raw = bytearray()
        while True:
            line = request.rfile.readline()
            raw += line
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := request.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    raw += trailer
                raw += b"\r\n"
                return bytes(raw)
            raw += request.rfile.read(size + 2)
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    with contextlib.suppress(OSError):  # a client killed while its request was held
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if request.command != "HEAD":
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)
