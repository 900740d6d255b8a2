"""moto's AWS APIs served by hypercorn: HTTP/1.1 and h2c (prior knowledge), for the KCL's Java client.

`python -m railpulse_devstack.moto_server --host 127.0.0.1 --port 4566`
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from hypercorn.asyncio import serve
from hypercorn.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from railpulse_devstack import _logging, _moto_dynamodb, _moto_kinesis

__all__ = ["main"]

logger = structlog.get_logger()


def _fast_clock() -> None:
    """moto's `unix_time()` builds datetimes (~20 us a call) and its SQS calls it for every queued
    message on every receive; `time.time()` gives the same value ~4x cheaper end to end."""
    import time

    import moto.core.utils as utils
    import moto.sqs.models as sqs_models

    original = utils.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    for module in (utils, sqs_models):
        setattr(module, "unix_time", unix_time)  # noqa: B010 (module attributes mypy cannot see)
        setattr(module, "unix_time_millis", unix_time_millis)  # noqa: B010


SLOW_REQUEST_S = 0.25
"""A request moto takes longer than this to answer is logged (`moto.slow_request`)."""


_LONG_POLLS = frozenset({"AmazonSQS.ReceiveMessage"})
"""Requests that wait on purpose (long polling): never slow."""


TALLY_EVERY_S = 60.0
"""How often the requests moto served are summed up in the log (`moto.requests`)."""


class _Tally:
    """What moto was asked since the last summary: requests and time per operation, logged as
    `moto.requests` every `TALLY_EVERY_S` (the operations that took the most time first). One
    process serves every API here, so this is where the stand-in's share of a latency tail is
    read off: which API keeps it busy, and how busy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, list[float]] = {}
        self._since = time.monotonic()

    def add(self, operation: str, took: float) -> None:
        with self._lock:
            entry = self._spent.setdefault(operation, [0, 0.0])
            entry[0] += 1
            entry[1] += took
            now = time.monotonic()
            if now - self._since < TALLY_EVERY_S:
                return
            spent, self._spent, since, self._since = self._spent, {}, self._since, now
        top = sorted(spent.items(), key=lambda item: -item[1][1])
        logger.info(
            "moto.requests",
            seconds=round(now - since, 1),
            requests=int(sum(n for n, _ in spent.values())),
            busy_ms=round(sum(ms for _, ms in spent.values()) * 1000, 1),
            top=[{"op": op, "n": int(n), "ms": round(ms * 1000, 1)} for op, (n, ms) in top[:12]],
        )


def _operation(environ: dict[str, Any]) -> str:
    """`X-Amz-Target` for the JSON APIs (Kinesis, SQS, DynamoDB); the method and the path's
    first segment for the REST ones (an S3 bucket, IoT's `things`)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target)
    first = str(environ.get("PATH_INFO", "")).lstrip("/").partition("/")[0]
    return f"{environ.get('REQUEST_METHOD')} /{first[:60]}"


def _never_empty(app: Any) -> Any:
    """hypercorn's WSGI wrapper sends the response start with the first body chunk, so a response
    without one (every HEAD, e.g. DuckDB probing a Parquet object) became a 500. moto builds its
    responses in memory: materialise the body and give it at least one (empty) chunk.

    Every API is served by this one process (its requests on hypercorn's worker threads, under
    one GIL): a slow request is logged with its operation, size, time and how many requests were
    in flight, so a slow latency sample can be matched with what moto was busy with then (a
    detector snapshot, an archiver flush); every request is tallied (`_Tally`)."""
    in_flight = [0]
    tally = _Tally()

    def wrapped(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        began = time.perf_counter()
        # hypercorn hands over the whole body, already bounded (`wsgi_max_body_size`), as a
        # BytesIO: saying so lets werkzeug read it in one go instead of 64 KB at a time into a
        # growing bytearray, which held the GIL (every other API waited) ~1 s per 37 MB PUT.
        environ["wsgi.input_terminated"] = True
        in_flight[0] += 1
        try:
            body = app(environ, start_response)
            try:
                chunks = list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        finally:
            in_flight[0] -= 1
        took = time.perf_counter() - began
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target not in _LONG_POLLS:
            tally.add(_operation(environ), took)
        if took >= SLOW_REQUEST_S and target not in _LONG_POLLS:
            logger.warning(
                "moto.slow_request",
                method=environ.get("REQUEST_METHOD"),
                path=str(environ.get("PATH_INFO", ""))[:120],
                target=target,
                bytes_in=int(environ.get("CONTENT_LENGTH") or 0),
                ms=round(took * 1000, 1),
                in_flight=in_flight[0] + 1,
            )
        return chunks or [b""]

    return wrapped


def _route_once_per_host() -> None:
    """moto finds the service for every request anew: for each it lists its own package
    directory (an `isdir` for each of some 150 modules) and tries the services' URL patterns,
    under a lock that every request in the process takes. That was a sixth of the stand-in's
    time in a 100-train soak. The service for a host name never changes: it is found once."""
    import moto.backends as backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    find = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        try:
            return found[host]
        except KeyError:
            backend = find(self, host)
            if len(found) < 1024:  # host names come from clients: keep a bound
                found[host] = backend
            return backend

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


SLOW_GC_S = 0.1
"""A garbage collection longer than this is logged (`moto.gc_pause`)."""


def _old_objects_stay_old() -> Callable[[str, dict[str, Any]], None]:
    """moto keeps everything it is given (every record, object and message), and a full
    collection walks every object the process holds, every API waiting behind it: 130-570 ms,
    growing with the heap, by 800,000 Kinesis records (1.4 GB); in an hour's soak the slowest
    samples lined up with small requests moto took 1.8-2 s to answer. After each full
    collection the survivors are frozen
    (`gc.freeze`), so the next one walks only what came since. Garbage among frozen objects is
    only what was alive at a full collection and became a reference cycle later: moto's state is
    kept, not dropped, so that is little. Pauses over `SLOW_GC_S` are logged."""
    began = [0.0]

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        took = time.perf_counter() - began[0]
        if info["generation"] == 2:
            gc.freeze()
        if took >= SLOW_GC_S:
            logger.warning(
                "moto.gc_pause",
                generation=info["generation"],
                ms=round(took * 1000, 1),
                collected=info["collected"],
                frozen=gc.get_freeze_count(),
            )

    gc.callbacks.append(watch)
    return watch


KEEP_ALIVE_MAX_REQUESTS = 2**62
"""Requests one connection may carry: unbounded in practice (see `server_config`)."""

S3_MAX_PUT_BYTES = 5 * 1024**3
"""S3's limit for one PutObject (5 GiB)."""


def server_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 75
    # hypercorn ends a connection after 1,000 requests (GOAWAY on HTTP/2). The KCL's Java client
    # keeps one HTTP/2 connection per stream and polls every 200 ms, so every ~2 minutes the
    # GetRecords calls in flight at the GOAWAY were dropped, and each shard's reads stopped for
    # the SDK's 10 s acquire timeout before a retry: the latency tail's 6-10 s samples (issue 18).
    # Kinesis does not end a healthy connection every 1,000 requests.
    config.keep_alive_max_requests = KEEP_ALIVE_MAX_REQUESTS
    config.h2_max_concurrent_streams = 200
    # hypercorn answers 400 to a WSGI request body over 16 MiB: a detector's model snapshot (about
    # 1 MB a train) grows past that. Take what S3 takes.
    config.wsgi_max_body_size = S3_MAX_PUT_BYTES
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)

    _logging.configure(json=True)
    config = server_config(args.host, args.port)
    _fast_clock()
    _route_once_per_host()
    _old_objects_stay_old()
    _moto_kinesis.install()  # concurrent puts and resharding as in Kinesis
    _moto_dynamodb.install()  # a Query reads its partition, not the whole table
    app = _never_empty(DomainDispatcherApplication(create_backend_app))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait, mode="wsgi")

    asyncio.run(run())


if __name__ == "__main__":
    main()
