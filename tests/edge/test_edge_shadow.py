"""An alert written into the shadow while the train is in a tunnel reaches it on reconnect, and
its acknowledgement shows in the reported state (judged through the HTTP data-plane API)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import msgspec
import pytest
from edgehelpers import (
    AgentProcess,
    TrainStream,
    agent_env,
    iot_data_client,
    reported,
)
from tunnel import TcpProxy
from waiting import wait_until

from railpulse_shared.contracts import AnomalyKind, DesiredAlerts, Severity, ShadowAlert

pytestmark = pytest.mark.stack


def test_alert_raised_while_offline_reaches_train_on_reconnect_and_is_acked(
    stack: dict[str, str], ensure_train: Callable[[str], str],
    agents: Callable[..., AgentProcess], tunnel: TcpProxy,
) -> None:
    thing = ensure_train("train-904")
    iot_data = iot_data_client(stack)
    # Start from no open alerts (shadows persist across runs of the stand-in).
    iot_data.update_thing_shadow(thingName=thing, payload=b'{"state": {"desired": {"alerts": null}}}')
    stream = TrainStream(stack, thing)
    agent = agents(thing, agent_env(stack, RAILPULSE_MQTT_PORT=str(tunnel.port)),
                   "--rate-hz", "5", "--reconnect-base-s", "0.2", "--reconnect-cap-s", "1")
    agent.start()
    wait_until(lambda: stream.poll() or len(stream.frames) >= 3, 30, what="the train online")

    tunnel.cut()
    alarm_id = f"alarm-{uuid.uuid4().hex[:10]}"
    alert = ShadowAlert(alarm_id=alarm_id, alert_key="limit:bearing_temp_3",
                        category=AnomalyKind.LIMIT, severity=Severity.CRITICAL,
                        raised_ms=1_800_000_000_000, channels=["bearing_temp_3"],
                        message="bearing_temp_3 above 120 degC")
    desired = {"alerts": msgspec.to_builtins(DesiredAlerts(open=[alert]))}
    iot_data.update_thing_shadow(
        thingName=thing, payload=json.dumps({"state": {"desired": desired}}).encode()
    )
    assert alarm_id not in agent.stdout_path.read_text()  # offline: nothing could reach it

    tunnel.restore()
    wait_until(lambda: alarm_id in reported(iot_data, thing).get("alerts", {}).get("acked", []),
               20, what="the acknowledgement in the reported state")
    # Surfaced on the train: the display callback printed it (once) and a log line named it.
    wait_until(lambda: "ALERT" in agent.stdout_path.read_text(), 5, what="the display line")
    display = [ln for ln in agent.stdout_path.read_text().splitlines() if alarm_id in ln]
    assert len(display) == 1 and "CRITICAL" in display[0]
    assert agent.terminate() == 0
    assert any('"train.alert"' in line and alarm_id in line for line in agent.log().splitlines())
