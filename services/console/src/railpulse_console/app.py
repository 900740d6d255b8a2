"""Routes: four pages, their JSON, and one server-sent-event stream. GET only.

Read-only is enforced twice: every route is GET (HEAD), and `ReadOnly` answers 405 to any other
method before routing, so a route added later cannot open a write path by accident.

Before either, `AllowedHosts` (Starlette's `TrustedHostMiddleware`) answers 400 to a `Host`
header outside `ConsoleSettings.allowed_host_names()`: a foreign site whose name was re-pointed at
the console's address (DNS rebinding) cannot read it through a visitor's browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import structlog
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from railpulse_console.console import Console
from railpulse_console.errors import WarehouseUnavailable
from railpulse_console.hub import sse
from railpulse_console.state import alarm_row, now_ms
from railpulse_console.views import TrainDetail
from railpulse_shared.contracts import AlarmTransition

__all__ = ["create_app"]

logger = structlog.get_logger()

_PACKAGE = Path(str(resources.files("railpulse_console")))
_encoder = msgspec.json.Encoder()
_TICK_S = 1.0
"""Snapshots (fleet, health, new points) are pushed once a second; anomalies at once."""

_SECURITY_HEADERS = [
    # Everything is served from here: no CDN, no inline script.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class ReadOnly:
    """ASGI middleware: only GET and HEAD reach the app; security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse(
                "read-only console", status_code=405, headers={"Allow": "GET, HEAD"}
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AllowedHosts:
    """ASGI middleware: 400 unless the `Host` header is an allowed host name; `/healthz` (a bare
    "ok") is exempt, since load balancers and container health checks call it by address."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz":
            await self.app(scope, receive, send)
        else:
            await self.checked(scope, receive, send)


def _json(value: object) -> Response:
    return Response(_encoder.encode(value), media_type="application/json")


def _int(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        return default


def create_app(console: Console, *, start_feeds: bool = True) -> Starlette:
    templates = Jinja2Templates(directory=str(_PACKAGE / "templates"))
    state = console.state

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if start_feeds:
            await console.start()
        try:
            yield
        finally:
            await console.close()

    def page(name: str, **context: Any) -> Callable[[Request], Awaitable[Response]]:
        async def render(request: Request) -> Response:
            values = {key: request.path_params.get(key, v) for key, v in context.items()}
            return templates.TemplateResponse(request, name, {"page": name[:-5], **values})

        return render

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def api_fleet(_: Request) -> Response:
        return _json(state.fleet())

    async def api_train(request: Request) -> Response:
        train = request.path_params["train"]
        now = now_ms()
        start = now - state.window_ms
        older: list[tuple[int, dict[str, float]]] = []
        older_alarms: list[AlarmTransition] = []
        history = "stream"
        train_state = state.trains.get(train)
        if train_state is None:
            return Response(
                _encoder.encode({"error": f"unknown train {train}"}),
                status_code=404,
                media_type="application/json",
            )
        first = train_state.series.ts[0] if len(train_state.series) else now
        with_series = request.query_params.get("series", "1") != "0"
        try:
            if with_series and first > start + 60_000:  # the streams do not cover the window: ask the warehouse
                older = await console.warehouse.telemetry(train, start, first)
            older_alarms = await console.warehouse.alarm_transitions(train, start)
            history = "stream+warehouse"
        except WarehouseUnavailable as exc:
            logger.debug("history_unavailable", train=train, reason=str(exc))
        detail = TrainDetail(
            summary=state.summary(train_state, now),
            window_s=state.window_ms // 1000,
            channels=state.channels(train, older=older) if with_series else [],
            anomalies=state.alerts(train=train, kind="anomaly", limit=500),
            alarms=[alarm_row(a) for a in state.alarms(train, older_alarms)],
            history=history,
        )
        return _json(detail)

    async def api_alerts(request: Request) -> Response:
        q = request.query_params
        items = state.alerts(
            train=q.get("train") or None,
            min_severity=_int(request, "severity", 0),
            category=q.get("category") or None,
            kind=q.get("kind") or None,
            limit=min(1000, max(1, _int(request, "limit", 200))),
        )
        return _json(items)

    async def api_health(_: Request) -> Response:
        return _json(console.health())

    async def stream(request: Request) -> Response:
        view = request.query_params.get("view", "fleet")
        train = request.query_params.get("train", "")
        after = _int(request, "after", now_ms())
        queue = console.hub.subscribe()

        async def events() -> AsyncIterator[bytes]:
            nonlocal after
            loop = asyncio.get_running_loop()
            next_tick = loop.time()
            try:
                yield b"retry: 2000\n\n"
                while not console.stop.is_set():
                    try:
                        kind, data = await asyncio.wait_for(
                            queue.get(), timeout=max(0.0, next_tick - loop.time())
                        )
                        yield sse(kind, data)
                        continue
                    except TimeoutError:
                        pass
                    next_tick = loop.time() + _TICK_S
                    if view == "fleet":
                        yield sse("fleet", _encoder.encode(state.fleet()))
                    elif view == "health":
                        yield sse("health", _encoder.encode(console.health()))
                    elif view == "train" and train in state.trains:
                        delta = state.frames_since(train, after)
                        if delta.ts:
                            after = delta.ts[-1]
                            yield sse("frames", _encoder.encode(delta))
                        summary = state.summary(state.trains[train], now_ms())
                        yield sse("summary", _encoder.encode(summary))
                    else:
                        yield b": tick\n\n"  # keeps proxies from closing an idle stream
            finally:
                console.hub.unsubscribe(queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    routes = [
        Route("/", page("fleet.html"), methods=["GET"]),
        Route("/trains/{train}", page("train.html", train=""), methods=["GET"]),
        Route("/alerts", page("alerts.html"), methods=["GET"]),
        Route("/health", page("health.html"), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/fleet", api_fleet, methods=["GET"]),
        Route("/api/trains/{train}", api_train, methods=["GET"]),
        Route("/api/alerts", api_alerts, methods=["GET"]),
        Route("/api/health", api_health, methods=["GET"]),
        Route("/api/stream", stream, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(_PACKAGE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(ReadOnly)
    # Added last, so it runs first.
    app.add_middleware(AllowedHosts, allowed_hosts=console.settings.allowed_host_names())
    return app
