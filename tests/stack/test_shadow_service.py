"""The device shadow service stand-in, judged by awsiotsdk's own shadow clients and by boto3.

The notifier writes desired state through the HTTP data-plane API (boto3 `iot-data`); the train
gets the delta over MQTT through `IotShadowClient` and acknowledges through its reported state.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from awscrt import mqtt, mqtt_request_response
from awsiot import iotshadow
from botocore.exceptions import ClientError
from stackhelpers import Device, aws_client

pytestmark = pytest.mark.stack


def _iot_data(env: dict[str, str]) -> Any:
    return aws_client(env, "iot-data", endpoint_url=env["RAILPULSE_IOT_DATA_ENDPOINT"])


class Waiter:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.items:
                    if pred(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


def test_http_desired_reaches_train_as_delta_and_reported_is_visible(device, stack) -> None:  # type: ignore[no-untyped-def]
    thing = "train-005"
    train: Device = device(thing)
    shadow = iotshadow.IotShadowClient(train.connection)
    deltas, accepted, rejected = Waiter(), Waiter(), Waiter()
    futures = [
        shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
            mqtt.QoS.AT_LEAST_ONCE,
            deltas,
        )[0],
        shadow.subscribe_to_update_shadow_accepted(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing),
            mqtt.QoS.AT_LEAST_ONCE,
            accepted,
        )[0],
        shadow.subscribe_to_update_shadow_rejected(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing),
            mqtt.QoS.AT_LEAST_ONCE,
            rejected,
        )[0],
    ]
    for f in futures:
        f.result(10)

    alert_id = uuid.uuid4().hex
    iot_data = _iot_data(stack)
    token = f"notifier-{alert_id[:8]}"
    resp = iot_data.update_thing_shadow(
        thingName=thing,
        payload=json.dumps(
            {
                "state": {"desired": {"alerts": [{"id": alert_id, "severity": "high"}]}},
                "clientToken": token,
            }
        ).encode(),
    )
    written = json.loads(resp["payload"].read())
    assert written["clientToken"] == token

    delta = deltas.wait_for(lambda e: e.state and e.state["alerts"][0]["id"] == alert_id, timeout=5)
    assert delta is not None, "delta never reached the train"
    assert delta.version == written["version"]
    assert delta.client_token == token
    assert "timestamp" in delta.metadata["alerts"][0]["id"]

    # The train acknowledges through its reported state.
    ack_token = f"train-{alert_id[:8]}"
    shadow.publish_update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(
                reported={"alerts": [{"id": alert_id, "severity": "high"}], "acked": [alert_id]}
            ),
            client_token=ack_token,
        ),
        mqtt.QoS.AT_LEAST_ONCE,
    ).result(10)
    ack = accepted.wait_for(lambda r: r.client_token == ack_token, timeout=5)
    assert ack is not None and ack.version == written["version"] + 1
    assert ack.state.reported["acked"] == [alert_id]

    doc = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())
    assert doc["state"]["reported"]["acked"] == [alert_id]
    assert doc["version"] == ack.version
    assert "delta" not in doc["state"] or "alerts" not in doc["state"]["delta"]
    assert "timestamp" in doc["metadata"]["reported"]["acked"][0]

    # A stale version is a conflict (409) on HTTP and a rejection on MQTT.
    with pytest.raises(ClientError) as err:
        iot_data.update_thing_shadow(
            thingName=thing,
            payload=json.dumps(
                {"state": {"desired": {"x": 1}}, "version": written["version"]}
            ).encode(),
        )
    assert err.value.response["Error"]["Code"] == "ConflictException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    shadow.publish_update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(reported={"x": 1}),
            version=1,
            client_token="stale",
        ),
        mqtt.QoS.AT_LEAST_ONCE,
    ).result(10)
    rej = rejected.wait_for(lambda r: r.client_token == "stale", timeout=5)
    assert rej is not None and rej.code == 409


def test_shadow_v2_client_get_update_and_missing(device, stack) -> None:  # type: ignore[no-untyped-def]
    """IotShadowClientV2 only completes when responses echo its clientToken."""
    thing = "train-006"
    mode = f"eco-{uuid.uuid4().hex[:6]}"  # shadows persist across runs: a fresh value has a delta
    train: Device = device(thing)
    _iot_data(stack).update_thing_shadow(
        thingName=thing, payload=json.dumps({"state": {"desired": {"mode": mode}}}).encode()
    )
    client = iotshadow.IotShadowClientV2(
        train.connection,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4,
            max_streaming_subscriptions=2,
            operation_timeout_in_seconds=10,
        ),
    )
    got: Future[Any] = client.get_shadow(iotshadow.GetShadowRequest(thing_name=thing))
    response = got.result(10)
    assert response.state.desired["mode"] == mode
    assert response.state.delta["mode"] == mode

    updated = client.update_shadow(
        iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(reported={"mode": mode})
        )
    ).result(10)
    assert updated.state.reported == {"mode": mode}

    named = client.get_named_shadow(
        iotshadow.GetNamedShadowRequest(
            thing_name=thing, shadow_name=f"missing-{uuid.uuid4().hex[:6]}"
        )
    )
    with pytest.raises(Exception) as err:
        named.result(10)
    assert "404" in repr(err.value) or "No shadow" in repr(err.value)


def test_train_cannot_read_another_trains_shadow(device, stack) -> None:  # type: ignore[no-untyped-def]
    _iot_data(stack).update_thing_shadow(
        thingName="train-008", payload=json.dumps({"state": {"desired": {"secret": 42}}}).encode()
    )
    intruder: Device = device("train-007")
    owner: Device = device("train-008")
    for dev in (intruder, owner):
        dev.subscribe(
            "$aws/things/train-008/shadow/get/accepted"
        )  # SUBACK granted under 3.1.1 anyway

    intruder.publish("$aws/things/train-008/shadow/get", b"{}")
    owner.publish("$aws/things/train-008/shadow/get", json.dumps({"clientToken": "owner"}).encode())

    # The owner's own request, made after the intruder's, is answered; nothing reaches the intruder.
    answer = owner.inbox.wait_for(
        lambda t, p: json.loads(p).get("clientToken") == "owner", timeout=5
    )
    assert answer is not None and json.loads(answer[1])["state"]["desired"]["secret"] == 42
    assert intruder.inbox.wait_for(lambda t, p: True, timeout=1.0) is None
    assert [json.loads(p).get("clientToken") for _, p in owner.inbox.messages] == ["owner"]


def test_shadows_survive_a_restart_of_the_stand_in(stack) -> None:  # type: ignore[no-untyped-def]
    from railpulse_devstack import stack as devstack
    from railpulse_devstack.config import load_config

    iot_data = _iot_data(stack)
    marker = uuid.uuid4().hex
    written = json.loads(
        iot_data.update_thing_shadow(
            thingName="train-009",
            payload=json.dumps({"state": {"desired": {"marker": marker}}}).encode(),
        )["payload"].read()
    )
    config = load_config()
    assert devstack._stop(config, "iot")
    result = devstack.up(config)
    assert result.started == ["iot"]
    doc = json.loads(iot_data.get_thing_shadow(thingName="train-009")["payload"].read())
    assert doc["state"]["desired"]["marker"] == marker
    assert doc["version"] == written["version"]


def test_data_plane_publish_reaches_the_train(device, stack) -> None:  # type: ignore[no-untyped-def]
    train: Device = device("train-010")
    train.subscribe("trains/train-010/alerts")
    marker = uuid.uuid4().hex
    _iot_data(stack).publish(
        topic="trains/train-010/alerts", qos=1, payload=json.dumps({"m": marker}).encode()
    )
    assert train.inbox.wait_for(lambda t, p: marker.encode() in p, timeout=5) is not None


def test_named_shadow_over_mqtt_and_http(device, stack) -> None:  # type: ignore[no-untyped-def]
    thing, name = "train-011", "alerts"
    train: Device = device(thing)
    shadow = iotshadow.IotShadowClient(train.connection)
    deltas, docs = Waiter(), Waiter()
    shadow.subscribe_to_named_shadow_delta_updated_events(
        iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(thing_name=thing, shadow_name=name),
        mqtt.QoS.AT_LEAST_ONCE,
        deltas,
    )[0].result(10)
    shadow.subscribe_to_named_shadow_updated_events(
        iotshadow.NamedShadowUpdatedSubscriptionRequest(thing_name=thing, shadow_name=name),
        mqtt.QoS.AT_LEAST_ONCE,
        docs,
    )[0].result(10)
    marker = uuid.uuid4().hex
    iot_data = _iot_data(stack)
    iot_data.update_thing_shadow(
        thingName=thing,
        shadowName=name,
        payload=json.dumps({"state": {"desired": {"m": marker}}}).encode(),
    )
    delta = deltas.wait_for(lambda e: e.state.get("m") == marker, timeout=5)
    assert delta is not None
    doc = docs.wait_for(lambda e: e.current.state.desired.get("m") == marker, timeout=5)
    assert doc is not None and doc.current.version == delta.version
    assert name in iot_data.list_named_shadows_for_thing(thingName=thing)["results"]
    named = json.loads(
        iot_data.get_thing_shadow(thingName=thing, shadowName=name)["payload"].read()
    )
    assert named["state"]["desired"]["m"] == marker


def _alerts_version(iot_data: Any, thing: str) -> int | None:
    try:
        doc = iot_data.get_thing_shadow(thingName=thing, shadowName="alerts")["payload"].read()
    except iot_data.exceptions.ResourceNotFoundException:
        return None
    version: int = json.loads(doc)["version"]
    return version


def test_an_unsigned_request_cannot_forge_an_alert(device, stack) -> None:  # type: ignore[no-untyped-def]
    """The probe's attack: a plain POST of a critical alert to a train's shadow, and a plain
    publish to its alert topic. Both are refused as AWS refuses them, and nothing changes."""
    import urllib.error
    import urllib.request

    thing = "train-012"
    train: Device = device(thing)
    train.subscribe(f"trains/{thing}/alerts")
    iot_data = _iot_data(stack)
    iot_data.update_thing_shadow(
        thingName=thing, shadowName="alerts", payload=b'{"state": {"desired": {"alerts": null}}}'
    )
    before = _alerts_version(iot_data, thing)
    forged = {"state": {"desired": {"alerts": {"forged": {"severity": "critical"}}}}}
    base = stack["RAILPULSE_IOT_DATA_ENDPOINT"]
    for url in (f"{base}/things/{thing}/shadow?name=alerts", f"{base}/topics/trains/{thing}/alerts?qos=1"):
        request = urllib.request.Request(url, data=json.dumps(forged).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
        assert refused.value.headers["x-amzn-ErrorType"] == "ForbiddenException"
        assert json.loads(refused.value.read()) == {"message": "Missing Authentication Token"}
    assert _alerts_version(iot_data, thing) == before
    shadow = json.loads(
        iot_data.get_thing_shadow(thingName=thing, shadowName="alerts")["payload"].read()
    )
    assert "forged" not in json.dumps(shadow)
    assert train.inbox.wait_for(lambda t, p: b"forged" in p, timeout=1.0) is None


def test_a_client_with_the_wrong_secret_is_refused(stack) -> None:  # type: ignore[no-untyped-def]
    """moto's well-known `testing` secret, or any other than the stack issued, signs in vain."""
    thing = "train-013"
    iot_data = _iot_data(stack)
    iot_data.update_thing_shadow(thingName=thing, payload=b'{"state": {"desired": {"n": 1}}}')
    before = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())["version"]
    assert stack["AWS_SECRET_ACCESS_KEY"] != "testing"
    impostor = _iot_data({**stack, "AWS_SECRET_ACCESS_KEY": "testing"})
    with pytest.raises(impostor.exceptions.ForbiddenException) as refused:
        impostor.update_thing_shadow(thingName=thing, payload=b'{"state": {"desired": {"n": 2}}}')
    assert "signature we calculated does not match" in str(refused.value)
    with pytest.raises(impostor.exceptions.ForbiddenException):
        impostor.get_thing_shadow(thingName=thing)
    doc = json.loads(iot_data.get_thing_shadow(thingName=thing)["payload"].read())
    assert doc["version"] == before and doc["state"]["desired"] == {"n": 1}
