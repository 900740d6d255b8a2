"""The device shadow service: one store behind the MQTT topics and the HTTP data-plane API.

Semantics follow the AWS IoT Device Shadow documentation:
- UPDATE merges `state.desired` / `state.reported` into the document: objects merge recursively,
  other values (arrays included) replace, `null` deletes a key, and `"desired": null` (or
  `"reported": null`) deletes the whole section. Every leaf written gets
  `metadata.<section>.<path>.timestamp`. Each accepted update increments `version`; a request
  carrying `version` that is not the current one is rejected with 409 "Version conflict".
- The accepted response carries the request's state and the metadata of what it wrote; the
  `/documents` message carries `previous` and `current` documents; the `/delta` message, sent when
  an update with `desired` leaves desired values that differ from reported ones, carries the
  differing desired values among those the update touched (with their metadata).
- GET returns desired, reported and delta (desired values absent from or different in reported).
- DELETE removes the document but keeps its version: a later UPDATE continues from it.
- `clientToken` is echoed on every response (accepted, rejected, delta, documents).
- Limits: state document (desired + reported) of at most 8 KB, nesting depth at most 6 in
  each section, clientToken at most 64 bytes, version a positive integer.
Timestamps are epoch seconds. The store persists to a JSON file (written at most every 200 ms
and on close), so a restart of the stand-in keeps every shadow and its version.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_STATE_BYTES",
    "Shadow",
    "ShadowError",
    "ShadowStore",
    "UpdateOutcome",
]

MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6
MAX_CLIENT_TOKEN = 64

Json = dict[str, Any]


class ShadowError(Exception):
    """A rejected request: `code` is the HTTP-style status the service answers with."""

    def __init__(self, code: int, message: str, client_token: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_token = client_token

    @property
    def error_type(self) -> str:
        return {
            400: "InvalidRequestException",
            401: "UnauthorizedException",
            404: "ResourceNotFoundException",
            409: "ConflictException",
            413: "RequestEntityTooLargeException",
        }.get(self.code, "InternalFailureException")

    def document(self, timestamp: int) -> Json:
        doc: Json = {"code": self.code, "message": self.message, "timestamp": timestamp}
        if self.client_token is not None:
            doc["clientToken"] = self.client_token
        return doc


@dataclass(slots=True)
class Shadow:
    version: int = 0
    exists: bool = False
    desired: Json | None = None
    reported: Json | None = None
    meta_desired: Json = field(default_factory=dict)
    meta_reported: Json = field(default_factory=dict)
    timestamp: int = 0

    def state(self) -> Json:
        state: Json = {}
        if self.desired is not None:
            state["desired"] = self.desired
        if self.reported is not None:
            state["reported"] = self.reported
        return state

    def metadata(self) -> Json:
        meta: Json = {}
        if self.desired is not None:
            meta["desired"] = self.meta_desired
        if self.reported is not None:
            meta["reported"] = self.meta_reported
        return meta

    def snapshot(self) -> Json:
        return copy.deepcopy(
            {"state": self.state(), "metadata": self.metadata(), "version": self.version}
        )

    def delta(self) -> Json:
        return _delta(self.desired or {}, self.reported or {})

    def to_json(self) -> Json:
        return {
            "version": self.version,
            "exists": self.exists,
            "desired": self.desired,
            "reported": self.reported,
            "meta_desired": self.meta_desired,
            "meta_reported": self.meta_reported,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, data: Json) -> Shadow:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    accepted: Json
    documents: Json
    delta: Json | None


def _delta(desired: Json, reported: Json) -> Json:
    out: Json = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
        elif isinstance(want, dict) and isinstance(reported[key], dict):
            sub = _delta(want, reported[key])
            if sub:
                out[key] = sub
        elif want != reported[key]:
            out[key] = want
    return out


def _restrict(delta: Json, touched: Json) -> Json:
    """The part of `delta` whose keys the update's desired section wrote."""
    out: Json = {}
    for key, value in delta.items():
        if key not in touched:
            continue
        if isinstance(value, dict) and isinstance(touched[key], dict):
            sub = _restrict(value, touched[key])
            if sub:
                out[key] = sub
        else:
            out[key] = value
    return out


def _meta_for(value: Any, ts: int) -> Any:
    if isinstance(value, dict):
        return {k: _meta_for(v, ts) for k, v in value.items()}
    if isinstance(value, list):
        return [
            _meta_for(v, ts) if isinstance(v, dict | list) else {"timestamp": ts} for v in value
        ]
    return {"timestamp": ts}


def _meta_of(meta: Json, shape: Json) -> Json:
    out: Json = {}
    for key, value in shape.items():
        if key not in meta:
            continue
        if isinstance(value, dict) and isinstance(meta[key], dict):
            out[key] = _meta_of(meta[key], value)
        else:
            out[key] = meta[key]
    return out


def _merge(doc: Json, meta: Json, patch: Json, ts: int) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            sub_meta = meta.get(key)
            if not isinstance(sub_meta, dict):
                sub_meta = {}
                meta[key] = sub_meta
            _merge(doc[key], sub_meta, value, ts)
        elif isinstance(value, dict):
            doc[key] = {}
            meta[key] = {}
            _merge(doc[key], meta[key], value, ts)
        else:
            doc[key] = copy.deepcopy(value)
            meta[key] = _meta_for(value, ts)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_depth(v) for v in value), default=0)
    return 0


def _parse_request(body: bytes | Json) -> Json:
    if isinstance(body, dict):
        return body
    try:
        doc = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ShadowError(400, "Invalid JSON") from None
    if not isinstance(doc, dict):
        raise ShadowError(400, "Invalid JSON")
    return doc


def _client_token(doc: Json) -> str | None:
    token = doc.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str) or len(token.encode()) > MAX_CLIENT_TOKEN:
        raise ShadowError(400, "Invalid clientToken")
    return token


Listener = Callable[[str, str, str, Json], None]
"""(thing, shadow_name, event, document): event is `update/accepted`, `update/documents`,
`update/delta` or `delete/accepted`; shadow_name is "" for the classic shadow."""


class ShadowStore:
    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._shadows: dict[tuple[str, str], Shadow] = {}
        self._listeners: list[Listener] = []
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        if path is not None:
            self._load(path)
            self._flusher = threading.Thread(
                target=self._flush_loop, name="shadow-flush", daemon=True
            )
            self._flusher.start()

    # -- persistence -------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        for item in data.get("shadows", []):
            self._shadows[(item["thing"], item["name"])] = Shadow.from_json(item["shadow"])

    def _write(self) -> None:
        if self._path is None:
            return
        with self._lock:
            data = {
                "shadows": [
                    {"thing": thing, "name": name, "shadow": shadow.to_json()}
                    for (thing, name), shadow in self._shadows.items()
                ]
            }
            text = json.dumps(data, separators=(",", ":"))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self._path)

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            if self._dirty.wait(0.5):
                self._closed.wait(0.2)
                self._dirty.clear()
                self._write()

    def close(self) -> None:
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self._write()

    # -- API ---------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _now(self) -> int:
        return int(self._clock())

    def _emit(self, thing: str, name: str, event: str, doc: Json) -> None:
        for listener in self._listeners:
            listener(thing, name, event, doc)

    def names(self, thing: str) -> list[str]:
        with self._lock:
            return sorted(n for (t, n), s in self._shadows.items() if t == thing and n and s.exists)

    def get(self, thing: str, name: str = "", request: bytes | Json | None = None) -> Json:
        token = _client_token(_parse_request(request)) if request else None
        with self._lock:
            shadow = self._shadows.get((thing, name))
            if shadow is None or not shadow.exists:
                raise ShadowError(404, f"No shadow exists with name: '{name or thing}'", token)
            doc = shadow.snapshot()
            delta = shadow.delta()
            if delta:
                doc["state"]["delta"] = delta
            doc["timestamp"] = self._now()
            if token is not None:
                doc["clientToken"] = token
            return doc

    def delete(self, thing: str, name: str = "", request: bytes | Json | None = None) -> Json:
        body = _parse_request(request) if request else {}
        token = _client_token(body)
        with self._lock:
            shadow = self._shadows.get((thing, name))
            if shadow is None or not shadow.exists:
                raise ShadowError(404, f"No shadow exists with name: '{name or thing}'", token)
            version = body.get("version")
            if version is not None and version != shadow.version:
                raise ShadowError(409, "Version conflict", token)
            self._shadows[(thing, name)] = Shadow(version=shadow.version, exists=False)
            doc: Json = {"version": shadow.version, "timestamp": self._now()}
            if token is not None:
                doc["clientToken"] = token
            self._dirty.set()
            self._emit(thing, name, "delete/accepted", doc)
            return doc

    def update(self, thing: str, name: str = "", request: bytes | Json = b"") -> UpdateOutcome:
        body = _parse_request(request)
        token = _client_token(body)
        state = body.get("state")
        if "state" not in body:
            raise ShadowError(400, "Missing required node: state", token)
        if not isinstance(state, dict):
            raise ShadowError(400, "State node must be an object", token)
        for section in state:
            if section not in ("desired", "reported"):
                raise ShadowError(400, f"Invalid state node: {section}", token)
            value = state[section]
            if value is not None and not isinstance(value, dict):
                raise ShadowError(400, f"{section} node must be an object", token)
            if value is not None and _depth(value) > MAX_DEPTH:
                raise ShadowError(
                    400, f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}", token
                )
        version = body.get("version")
        if version is not None and (
            not isinstance(version, int) or isinstance(version, bool) or version < 0
        ):
            raise ShadowError(400, "Invalid version", token)

        with self._lock:
            current = self._shadows.get((thing, name)) or Shadow()
            if version is not None and version != current.version:
                raise ShadowError(409, "Version conflict", token)
            ts = self._now()
            previous = current.snapshot() if current.exists else None
            nxt = copy.deepcopy(current)
            nxt.exists = True
            meta_accepted: Json = {}
            for section in ("desired", "reported"):
                if section not in state:
                    continue
                patch = state[section]
                meta_attr = "meta_desired" if section == "desired" else "meta_reported"
                if patch is None:
                    setattr(nxt, section, None)
                    setattr(nxt, meta_attr, {})
                    continue
                target = getattr(nxt, section)
                if target is None:
                    target = {}
                    setattr(nxt, section, target)
                meta = getattr(nxt, meta_attr)
                _merge(target, meta, patch, ts)
                meta_accepted[section] = _meta_for(
                    {k: v for k, v in patch.items() if v is not None}, ts
                )
            size = len(json.dumps(nxt.state(), separators=(",", ":")).encode())
            if size > MAX_STATE_BYTES:
                raise ShadowError(413, "The payload exceeds the maximum size allowed", token)
            nxt.version = current.version + 1
            nxt.timestamp = ts
            self._shadows[(thing, name)] = nxt

            accepted: Json = {
                "state": state,
                "metadata": meta_accepted,
                "version": nxt.version,
                "timestamp": ts,
            }
            documents: Json = {"current": nxt.snapshot(), "timestamp": ts}
            if previous is not None:
                documents["previous"] = previous
            delta_doc: Json | None = None
            touched = state.get("desired")
            if isinstance(touched, dict):
                delta = _restrict(nxt.delta(), touched)
                if delta:
                    delta_doc = {
                        "version": nxt.version,
                        "timestamp": ts,
                        "state": copy.deepcopy(delta),
                        "metadata": _meta_of(nxt.meta_desired, delta),
                    }
            if token is not None:
                for doc in (accepted, documents, delta_doc):
                    if doc is not None:
                        doc["clientToken"] = token
            self._dirty.set()
            self._emit(thing, name, "update/accepted", accepted)
            self._emit(thing, name, "update/documents", documents)
            if delta_doc is not None:
                self._emit(thing, name, "update/delta", delta_doc)
            return UpdateOutcome(accepted, documents, delta_doc)
