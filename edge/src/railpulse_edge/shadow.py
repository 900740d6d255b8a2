"""The train's device shadow: alerts in (desired), acknowledgements and spool health out (reported).

The notifier writes `desired.alerts = DesiredAlerts` (open alerts). The train subscribes to its
delta with awsiotsdk's `IotShadowClient` and, on every (re)connect, GETs the whole shadow, so an
alert raised while it was in a tunnel reaches it as soon as it is back. Each alert is surfaced
once per process (a log line and the `on_alert` callback an onboard display could use) and
acknowledged by reporting `reported.alerts.acked` = the open alert ids. Spool evictions are
reported too (`reported.spool`), so a data gap is visible from the cloud side.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from awscrt import mqtt
from awsiot import iotshadow

from railpulse_shared.contracts import DesiredAlerts, ReportedAlerts, ShadowAlert

__all__ = ["AlertCallback", "ShadowSync"]

logger = structlog.get_logger()

AlertCallback = Callable[[str, ShadowAlert], None]
_QOS = mqtt.QoS.AT_LEAST_ONCE


class ShadowSync:
    def __init__(
        self, thing: str, connection: Any, on_alert: AlertCallback | None = None, *, client: Any = None
    ) -> None:
        self.thing = thing
        self._client = client if client is not None else iotshadow.IotShadowClient(connection)
        self._on_alert = on_alert
        self._loop = asyncio.get_running_loop()
        self.surfaced: dict[str, ShadowAlert] = {}
        self.acked: list[str] = []
        self._reported_acked: list[str] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- wiring ------------------------------------------------------------------------------------
    def on_connected(self) -> None:
        """Called on every (re)connect: (re)subscribe, then GET the current document."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self._loop.create_task(self._sync())

    async def _sync(self) -> None:
        thing = self.thing
        subs = [
            self._client.subscribe_to_shadow_delta_updated_events(
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), _QOS,
                self._threadsafe(self._on_delta),
            ),
            self._client.subscribe_to_get_shadow_accepted(
                iotshadow.GetShadowSubscriptionRequest(thing_name=thing), _QOS,
                self._threadsafe(self._on_get),
            ),
            self._client.subscribe_to_get_shadow_rejected(
                iotshadow.GetShadowSubscriptionRequest(thing_name=thing), _QOS,
                self._threadsafe(self._on_get_rejected),
            ),
            self._client.subscribe_to_update_shadow_rejected(
                iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), _QOS,
                self._threadsafe(self._on_update_rejected),
            ),
        ]
        try:
            for future, _topic in subs:
                await asyncio.wait_for(asyncio.wrap_future(future), 15)
            await asyncio.wrap_future(
                self._client.publish_get_shadow(
                    iotshadow.GetShadowRequest(thing_name=thing, client_token=_token("get")), _QOS
                )
            )
        except (TimeoutError, Exception) as exc:  # the link's reconnect will call us again
            logger.warning("shadow.sync_failed", thing=thing, error=repr(exc))

    def _threadsafe(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(event: Any) -> None:
            self._loop.call_soon_threadsafe(handler, event)

        return call

    # -- responses ---------------------------------------------------------------------------------
    def _on_get(self, response: Any) -> None:
        state = response.state
        desired = (state.desired or {}) if state is not None else {}
        reported = (state.reported or {}) if state is not None else {}
        with contextlib.suppress(msgspec.ValidationError):
            self._reported_acked = msgspec.convert(
                reported.get("alerts") or {}, ReportedAlerts, strict=False
            ).acked
        self._handle_alerts(desired.get("alerts"))

    def _on_delta(self, event: Any) -> None:
        state = event.state or {}
        if "alerts" in state:
            self._handle_alerts(state["alerts"])

    def _on_get_rejected(self, error: Any) -> None:
        if getattr(error, "code", None) != 404:  # 404: no shadow yet, nothing to surface
            logger.warning("shadow.get_rejected", thing=self.thing, code=error.code, message=error.message)

    def _on_update_rejected(self, error: Any) -> None:
        logger.warning("shadow.update_rejected", thing=self.thing, code=error.code, message=error.message)

    # -- alerts ------------------------------------------------------------------------------------
    def _handle_alerts(self, raw: Any) -> None:
        if raw is None:
            raw = {}
        try:
            desired = msgspec.convert(raw, DesiredAlerts, strict=False)
        except msgspec.ValidationError as exc:
            logger.warning("shadow.bad_alerts", thing=self.thing, error=str(exc))
            return
        for alert in desired.open:
            if alert.alarm_id not in self.surfaced:
                self.surfaced[alert.alarm_id] = alert
                logger.warning(
                    "train.alert", thing=self.thing, alarm_id=alert.alarm_id,
                    alert_key=alert.alert_key, severity=alert.severity.name,
                    category=alert.category.value, message=alert.message,
                )
                if self._on_alert is not None:
                    try:
                        self._on_alert(self.thing, alert)
                    except Exception:
                        logger.exception("train.alert_callback_failed", thing=self.thing)
        open_ids = sorted(a.alarm_id for a in desired.open)
        if desired.omitted:
            logger.warning("train.alerts_omitted", thing=self.thing, omitted=desired.omitted)
        if open_ids != sorted(self._reported_acked or []):
            self.acked = open_ids
            self._reported_acked = open_ids
            self._publish_reported({"alerts": msgspec.to_builtins(ReportedAlerts(acked=open_ids))})

    def report(self, reported: dict[str, Any]) -> None:
        """Merge `reported` into the shadow's reported state (call while connected)."""
        self._publish_reported(reported)

    def _publish_reported(self, reported: dict[str, Any]) -> None:
        try:
            self._client.publish_update_shadow(
                iotshadow.UpdateShadowRequest(
                    thing_name=self.thing,
                    state=iotshadow.ShadowState(reported=reported),
                    client_token=_token("ack"),
                ),
                _QOS,
            )
        except Exception as exc:  # offline: the next (re)connect's GET re-acknowledges
            logger.info("shadow.report_deferred", thing=self.thing, error=repr(exc))
            self._reported_acked = None


def _token(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"
