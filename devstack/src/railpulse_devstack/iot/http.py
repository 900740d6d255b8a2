"""The IoT data-plane HTTP API stand-in (the REST paths botocore's `iot-data` client uses).

    POST   /things/<thing>/shadow[?name=<shadow>]     UpdateThingShadow (409 on version conflict)
    GET    /things/<thing>/shadow[?name=<shadow>]     GetThingShadow (404 if none)
    DELETE /things/<thing>/shadow[?name=<shadow>]     DeleteThingShadow
    GET    /api/things/shadow/ListNamedShadowsForThing/<thing>
    POST   /topics/<topic>?qos=<0|1>[&retain=true]    Publish (through the broker)
    GET    /healthz                                   200 once the MQTT side is subscribed

Every path but /healthz needs a request signed with SigV4 by the credentials the stack issued
(`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` of the stack env, region `AWS_REGION`, signing
name `iotdata`), as AWS IoT's data endpoint does; `sigv4.py` checks it. Anything else gets 403
`ForbiddenException` and changes nothing.

Errors carry `x-amzn-ErrorType` and a JSON `message`, which botocore turns into
`ConflictException`, `ResourceNotFoundException`, ... on the client.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from railpulse_devstack.iot.mqtt import IotMqtt
from railpulse_devstack.iot.shadow import ShadowError, ShadowStore
from railpulse_devstack.iot.sigv4 import AuthError, SigningKey, verify

__all__ = ["DataPlaneServer"]

logger = structlog.get_logger()

_MAX_BODY = 128 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DataPlaneServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, doc: dict[str, Any] | None, error_type: str | None = None) -> None:
        body = b"" if doc is None else json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ShadowError(413, "The payload exceeds the maximum size allowed")
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.split("/") if p]
        store = self.server.store
        try:
            body = self._body() if method in ("POST", "PUT", "DELETE") else b""
            if parts == ["healthz"]:
                ok = self.server.mqtt.ready.is_set()
                self._send(200 if ok else 503, {"ready": ok})
                return
            verify(
                self.server.key,
                method,
                self.path,
                dict(self.headers.items()),
                body,
                dt.datetime.now(dt.UTC),
            )
            if len(parts) == 3 and parts[0] == "things" and parts[2] == "shadow":
                thing, name = parts[1], query.get("name", [""])[0]
                if method == "GET":
                    self._send(200, store.get(thing, name))
                elif method == "POST":
                    self._send(200, store.update(thing, name, body).accepted)
                elif method == "DELETE":
                    self._send(200, store.delete(thing, name, body or None))
                else:
                    self._send(405, {"message": "Method not allowed"}, "MethodNotAllowedException")
            elif (
                parts[:4] == ["api", "things", "shadow", "ListNamedShadowsForThing"]
                and len(parts) == 5
            ):
                self._send(200, {"results": store.names(parts[4]), "timestamp": store._now()})
            elif parts and parts[0] == "topics" and method == "POST":
                topic = unquote(url.path[len("/topics/") :])
                qos = int(query.get("qos", ["0"])[0])
                retain = query.get("retain", ["false"])[0].lower() == "true"
                self.server.mqtt.publish(topic, body, qos=min(qos, 1), retain=retain)
                self._send(200, None)
            else:
                self._send(
                    404,
                    {"message": f"No route for {method} {url.path}"},
                    "ResourceNotFoundException",
                )
        except AuthError as err:
            logger.warning("http.request_refused", method=method, path=url.path, reason=err.message)
            self._send(HTTPStatus.FORBIDDEN, {"message": err.message}, "ForbiddenException")
        except ShadowError as err:
            self._send(err.code, {"code": err.code, "message": err.message}, err.error_type)
        except Exception as err:
            logger.exception("http.request_failed", path=self.path)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"message": repr(err)}, "InternalFailureException"
            )

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class DataPlaneServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, host: str, port: int, store: ShadowStore, mqtt: IotMqtt, key: SigningKey
    ) -> None:
        super().__init__((host, port), _Handler)
        self.key = key
        self.store = store
        self.mqtt = mqtt
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name="data-plane-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
