"""The train's device shadow: desired `alerts` written by the notifier, reported acks read back.

Desired state is `{"alerts": {"open": [ShadowAlert...], "omitted": N}}`: open alarms, most severe
first (newest first within a severity), cut to `budget_bytes` so the whole document stays under
the 8 KB shadow limit, `omitted` counting what did not fit. Arrays replace on update, so each write
carries the complete list and a cleared alarm simply leaves it.

Writes state the version they expect and carry a clientToken. On a version conflict the caller
re-reads the version *before* re-reading its alarm state, then writes again: whichever writer
lands last built its document from state read after every earlier writer's store write, so the
shadow never ends on a stale list (see `Notifier._sync_shadow`).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_notifier.errors import (
    ShadowRejectedError,
    ShadowTooLargeError,
    ShadowUnavailableError,
)
from railpulse_notifier.lifecycle import AlarmRecord
from railpulse_shared.contracts import ShadowAlert

__all__ = [
    "MAX_SHADOW_BYTES",
    "Reported",
    "ShadowClient",
    "ShadowConflict",
    "build_desired",
]

logger = structlog.get_logger()

MAX_SHADOW_BYTES = 8 * 1024
"""AWS IoT limit on a shadow's state document (desired + reported)."""
_RETRYABLE = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "InternalFailureException",
     "RequestTimeoutException", "TooManyRequestsException"}
)
_encoder = msgspec.json.Encoder()
_ENVELOPE = len(b'{"open":[],"omitted":999999}')


class ShadowConflict(Exception):
    """The shadow's version moved since it was read (not an error: re-read and retry)."""


@dataclass(frozen=True, slots=True)
class Reported:
    version: int | None
    """None when the shadow has no document."""
    acked: dict[str, int]
    """alarm_id -> when the train reported it (epoch ms, from the shadow metadata)."""


def build_desired(records: Iterable[AlarmRecord], budget_bytes: int) -> dict[str, Any]:
    """The desired `alerts` section for a train's alarm records."""
    open_ = sorted(
        (r for r in records if r.open), key=lambda r: (-r.severity, -r.raised_ms, r.alert_key)
    )
    alerts: list[dict[str, Any]] = []
    size = _ENVELOPE
    for r in open_:
        alert = msgspec.to_builtins(
            ShadowAlert(
                alarm_id=r.alarm_id,
                alert_key=r.alert_key,
                category=r.category,
                severity=r.severity,
                raised_ms=r.raised_ms,
                channels=r.channels,
                message=r.message,
                evidence=[e.source for e in r.evidence],
            )
        )
        cost = len(_encoder.encode(alert)) + 1
        if size + cost > budget_bytes:
            break
        alerts.append(alert)
        size += cost
    return {"open": alerts, "omitted": len(open_) - len(alerts)}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class ShadowClient:
    """UpdateThingShadow / GetThingShadow over the IoT data-plane API, with backoff."""

    def __init__(self, iot_data: Any, *, max_attempts: int = 8) -> None:
        self._iot = iot_data
        self._max_attempts = max_attempts
        self._prefix = f"notifier-{uuid.uuid4().hex[:8]}"
        self._counter = itertools.count(1)

    async def _call(self, op: str, **kwargs: Any) -> Any:
        """One API call, retried with jittered backoff on throttling and service errors."""
        for attempt in range(self._max_attempts):
            try:
                return await getattr(self._iot, op)(**kwargs)
            except ClientError as err:
                code = _code(err)
                if code == "ConflictException":
                    raise ShadowConflict(kwargs.get("thingName", "")) from err
                if code == "ResourceNotFoundException":
                    return None
                if code == "RequestEntityTooLargeException":
                    raise ShadowTooLargeError(kwargs.get("thingName", "")) from err
                if code not in _RETRYABLE:
                    raise ShadowRejectedError(f"{op} {kwargs.get('thingName')}: {code}") from err
                last: Exception = err
            except BotoCoreError as err:
                last = err
            logger.debug("shadow.retry", op=op, attempt=attempt, error=str(last))
            await asyncio.sleep(min(2.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0))
        raise ShadowUnavailableError(f"{op} failed after {self._max_attempts} attempts: {last}")

    async def get(self, train: str) -> Reported:
        """The shadow's version (0 if it has none) and the train's acknowledgements."""
        resp = await self._call("get_thing_shadow", thingName=train)
        if resp is None:
            return Reported(version=None, acked={})
        doc = msgspec.json.decode(await resp["payload"].read())
        reported = doc.get("state", {}).get("reported", {}).get("alerts", {})
        meta = doc.get("metadata", {}).get("reported", {}).get("alerts", {}).get("acked", [])
        acked: dict[str, int] = {}
        ids = reported.get("acked", []) if isinstance(reported, dict) else []
        for i, alarm_id in enumerate(ids if isinstance(ids, list) else []):
            ts = meta[i].get("timestamp", 0) if i < len(meta) and isinstance(meta[i], dict) else 0
            if isinstance(alarm_id, str):
                acked[alarm_id] = int(ts) * 1000
        return Reported(version=int(doc.get("version", 0)), acked=acked)

    async def update(self, train: str, desired: dict[str, Any], version: int | None) -> int:
        """Write desired `alerts` expecting `version`; returns the new version.

        `None` writes unconditionally: a shadow without a document (never written, or deleted,
        which keeps its version) cannot be read for its version. The caller then verifies.
        """
        body: dict[str, Any] = {
            "state": {"desired": {"alerts": desired}},
            "clientToken": f"{self._prefix}-{next(self._counter)}",
        }
        if version is not None:
            body["version"] = version
        resp = await self._call("update_thing_shadow", thingName=train, payload=_encoder.encode(body))
        if resp is None:
            raise ShadowRejectedError(f"update {train}: thing not found")
        doc = msgspec.json.decode(await resp["payload"].read())
        return int(doc["version"])
