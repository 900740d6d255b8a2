"""Through the running stack to a train: awsiotsdk's IotShadowClient over mutual-TLS MQTT."""

from __future__ import annotations

import contextlib

import pytest
from botocore.exceptions import ClientError
from ntkit import Resources, Seen, Train, anomaly, client, open_alerts, running, until

from railpulse_shared.contracts import Severity

pytestmark = pytest.mark.stack


def _fresh_shadow(res: Resources, train: str) -> None:
    iot = client(res.env, "iot-data", res.env["RAILPULSE_IOT_DATA_ENDPOINT"])
    with contextlib.suppress(ClientError):
        iot.delete_thing_shadow(thingName=train)


async def test_alert_reaches_an_online_train_within_a_second_and_its_ack_acknowledges(
    res: Resources,
) -> None:
    name, seen = "train-018", Seen()
    _fresh_shadow(res, name)
    train = Train(res.env, name)
    try:
        async with running(res.settings(), seen):
            sent = anomaly(name, "limit:bearing_temp_c", Severity.CRITICAL)
            res.send(sent)
            assert await seen.until(lambda s: len(s) == 1, 10)
            delta = train.deltas.wait_for(
                lambda e: any(a["alert_key"] == sent.alert_key for a in open_alerts(e.state)), 5)
            assert delta is not None, "the delta never reached the train"
            arrived_s, event = delta
            latency_ms = arrived_s * 1000 - seen.items[0].received_ms
            print(f"receipt-to-train latency {latency_ms:.0f} ms")
            assert latency_ms < 1000, f"{latency_ms:.0f} ms from receipt to the train"
            [alert] = open_alerts(event.state)
            assert alert["severity"] == Severity.CRITICAL

            train.ack([alert["alarm_id"]])

            def acknowledged() -> bool:
                return res.items(name)[0]["state"] == "acknowledged"

            assert await until(acknowledged, 10)
    finally:
        train.close()
    states = [e["state"] for e in res.events() if e["train"] == name]
    assert states == ["raised", "acknowledged"]


async def test_alert_reaches_an_offline_train_when_it_reconnects(res: Resources) -> None:
    name, seen = "train-019", Seen()
    _fresh_shadow(res, name)
    async with running(res.settings(), seen):
        sent = anomaly(name, "sensor_fault:axle_vibration_g", Severity.WARNING)
        res.send(sent)
        assert await seen.until(lambda s: len(s) == 1 and s[0].shadow_written, 10)
    # The train comes online after the notifier wrote its shadow: it reads the delta on connect.
    train = Train(res.env, name)
    try:
        doc = train.get()
        keys = [a["alert_key"] for a in open_alerts(doc.state.delta)]
        assert keys == [sent.alert_key]
    finally:
        train.close()
