"""Routes without a stack: pages render, JSON answers, nothing but GET gets in, and only for the
host names the console is configured to answer."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.testclient import TestClient
from waiting import free_port, wait_until

from railpulse_console.app import create_app
from railpulse_console.console import Console
from railpulse_console.settings import ConsoleSettings, expand_names
from railpulse_shared.contracts import AcceptedFrame, Anomaly, AnomalyKind, Reading, Severity


@pytest.fixture
def console() -> Console:
    return Console(ConsoleSettings(fleet="train-001..train-003", pg_dsn=None))


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(create_app(console, start_feeds=False), base_url="http://127.0.0.1") as client:
        yield client


def _now() -> int:
    return int(time.time() * 1000)


def test_pages_render(client: TestClient) -> None:
    for path, marker in [
        ("/", 'id="fleet"'),
        ("/trains/train-001", 'data-train="train-001"'),
        ("/alerts", 'id="feed"'),
        ("/health", 'id="queues"'),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert marker in response.text, path
        assert "https://" not in response.text  # nothing from a CDN


def test_charting_library_is_served_locally(client: TestClient) -> None:
    response = client.get("/static/vendor/uplot-1.6.32.min.js")
    assert response.status_code == 200 and "uPlot" in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/api/fleet", "/api/alerts", "/static/common.js", "/nope"])
def test_nothing_but_get_gets_in(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_fleet_and_train_json(console: Console, client: TestClient) -> None:
    console.deliver(
        AcceptedFrame(train="train-002", seq=7, ts_ms=_now(), readings={"speed": Reading(value=88.0)})
    )
    fleet = client.get("/api/fleet").json()
    assert [t["train"] for t in fleet["trains"]] == ["train-001", "train-002", "train-003"]
    assert fleet["online"] == 1
    detail = client.get("/api/trains/train-002").json()
    assert detail["summary"]["last_seq"] == 7
    assert detail["channels"][0]["name"] == "speed"
    assert detail["channels"][0]["operating"] == [0.0, 200.0]
    assert detail["history"] == "stream"  # no warehouse configured: degrades, no error
    assert client.get("/api/trains/train-002?series=0").json()["channels"] == []
    assert client.get("/api/trains/nope").status_code == 404


def test_alerts_json_filters(console: Console, client: TestClient) -> None:
    for i, severity in enumerate([Severity.WARNING, Severity.CRITICAL]):
        console.deliver(
            Anomaly(
                anomaly_id=f"a{i}",
                train="train-001",
                ts_ms=_now(),
                frame_seq=i,
                category=AnomalyKind.MODEL,
                severity=severity,
                score=1.5,
                threshold=1.0,
                alert_key="model:speed",
            )
        )
    assert [a["id"] for a in client.get("/api/alerts").json()] == ["a1", "a0"]
    assert [a["id"] for a in client.get("/api/alerts?severity=3").json()] == ["a1"]
    assert client.get("/api/alerts?train=train-009").json() == []
    assert client.get("/api/alerts?limit=bad").status_code == 200


def test_health_json_without_feeds(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["frames_per_s"] == 0 and health["streams"] == []
    assert health["warehouse"] == "not configured"


def test_fleet_ranges_expand() -> None:
    assert expand_names("t-08..t-10, x,t-09") == ("t-08", "t-09", "t-10", "x")


@pytest.fixture
def served() -> Iterator[int]:
    """The console app under a real uvicorn on a free loopback port (no feeds)."""
    port = free_port()
    console = Console(ConsoleSettings(fleet="train-001", port=port))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(console, start_feeds=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            proxy_headers=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the console to listen")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _get(port: int, host: str, path: str = "/api/fleet") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_foreign_host_header_is_refused(served: int) -> None:
    """DNS rebinding: a browser on evil.example re-pointed at 127.0.0.1 sends `Host: evil.example`."""
    for host in ("evil.example", f"evil.example:{served}", "127.0.0.1.nip.io", ""):
        status, body = _get(served, host)
        assert status == 400, host
        assert b"train-001" not in body
    for host in (f"127.0.0.1:{served}", f"localhost:{served}", "localhost"):
        status, body = _get(served, host)
        assert status == 200 and b"train-001" in body, host
    # A load balancer checks health by the task's address: /healthz answers any host.
    assert _get(served, "10.0.3.17:8080", "/healthz") == (200, b"ok")


def test_allowed_hosts_default_to_loopback_and_the_bind_host() -> None:
    assert ConsoleSettings().allowed_host_names() == ("127.0.0.1", "localhost")
    assert ConsoleSettings(host="10.1.2.3").allowed_host_names() == (
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
    )
    assert ConsoleSettings(host="0.0.0.0").allowed_host_names() == ("127.0.0.1", "localhost")
    configured = ConsoleSettings(host="0.0.0.0", allowed_hosts="console.example, *.ops.example")
    assert configured.allowed_host_names() == ("console.example", "*.ops.example")


def test_a_configured_host_is_answered_and_loopback_then_is_not() -> None:
    console = Console(ConsoleSettings(fleet="train-001", allowed_hosts="console.example"))
    app = create_app(console, start_feeds=False)
    with TestClient(app, base_url="http://console.example") as client:
        assert client.get("/api/fleet").status_code == 200
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/fleet").status_code == 400
