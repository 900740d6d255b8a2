"""How the train treats the alerts in its shadow, without a broker (a recording shadow client)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
from structlog.testing import capture_logs

from railpulse_edge.shadow import ShadowSync
from railpulse_shared.contracts import AnomalyKind, DesiredAlerts, Severity, ShadowAlert


class RecordingClient:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def publish_update_shadow(self, request: Any, qos: Any) -> None:
        self.updates.append(request.state.reported)


def _alert(alarm_id: str, severity: Severity = Severity.WARNING) -> ShadowAlert:
    return ShadowAlert(alarm_id=alarm_id, alert_key=f"limit:{alarm_id}", category=AnomalyKind.LIMIT,
                       severity=severity, raised_ms=1)


def _desired(*alerts: ShadowAlert, omitted: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(DesiredAlerts(open=list(alerts), omitted=omitted))
    return result


async def test_each_alert_is_surfaced_once_and_acknowledged_with_the_open_ids() -> None:
    client = RecordingClient()
    seen: list[tuple[str, str]] = []
    sync = ShadowSync("train-001", None, lambda thing, a: seen.append((thing, a.alarm_id)), client=client)

    with capture_logs() as logs:
        # GET on connect: one open alert, nothing acknowledged yet.
        sync._on_get(SimpleNamespace(state=SimpleNamespace(desired={"alerts": _desired(_alert("a"))},
                                                           reported={})))
        # A delta adds a second one; a repeated delta changes nothing.
        delta = SimpleNamespace(state={"alerts": _desired(_alert("a"), _alert("b", Severity.CRITICAL))})
        sync._on_delta(delta)
        sync._on_delta(delta)

    assert seen == [("train-001", "a"), ("train-001", "b")]
    assert client.updates == [{"alerts": {"acked": ["a"]}}, {"alerts": {"acked": ["a", "b"]}}]
    surfaced = [e for e in logs if e["event"] == "train.alert"]
    assert [(e["alarm_id"], e["severity"]) for e in surfaced] == [("a", "WARNING"), ("b", "CRITICAL")]


async def test_already_acknowledged_alerts_are_not_acknowledged_again_but_still_shown() -> None:
    client = RecordingClient()
    seen: list[str] = []
    sync = ShadowSync("train-002", None, lambda _t, a: seen.append(a.alarm_id), client=client)
    sync._on_get(SimpleNamespace(state=SimpleNamespace(
        desired={"alerts": _desired(_alert("x"))}, reported={"alerts": {"acked": ["x"]}})))
    assert seen == ["x"]  # a restarted train shows what is open
    assert client.updates == []


async def test_bad_alert_documents_and_callback_errors_do_not_break_the_agent() -> None:
    client = RecordingClient()

    def broken(_thing: str, _alert: ShadowAlert) -> None:
        raise RuntimeError("display offline")

    sync = ShadowSync("train-003", None, broken, client=client)
    with capture_logs() as logs:
        sync._on_delta(SimpleNamespace(state={"alerts": {"open": "not a list"}}))
        sync._on_delta(SimpleNamespace(state={"alerts": _desired(_alert("z"), omitted=3)}))
    events = [e["event"] for e in logs]
    assert "shadow.bad_alerts" in events and "train.alert_callback_failed" in events
    assert "train.alerts_omitted" in events
    assert client.updates == [{"alerts": {"acked": ["z"]}}]
