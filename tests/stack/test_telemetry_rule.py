"""The telemetry topic rules: device frames reach Kinesis `telemetry-raw` with their identity."""

from __future__ import annotations

import json
import uuid

import pytest
from stackhelpers import Device, StreamReader

from railpulse_shared.codec import decode_envelope as decode

pytestmark = pytest.mark.stack


def _frame(device_id: str, marker: str) -> bytes:
    return json.dumps({"device_id": device_id, "marker": marker, "bearing_temp_c": 61.5}).encode()


def _has_marker(marker: str):  # type: ignore[no-untyped-def]
    return lambda record: marker.encode() in decode(record["Data"]).payload


def test_train_frame_lands_in_raw_stream_with_identity(device, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    train: Device = device("train-001")
    marker = uuid.uuid4().hex
    train.publish("trains/train-001/telemetry", _frame("train-001", marker))

    found = raw_stream.wait_for(_has_marker(marker), timeout=10)
    assert found is not None, "frame never reached telemetry-raw"
    _, record = found
    envelope = decode(record["Data"])
    assert record["PartitionKey"] == "train-001"
    assert envelope.principal == "train-001"
    assert envelope.topic == "trains/train-001/telemetry"
    assert json.loads(envelope.payload)["marker"] == marker
    assert envelope.received_ms > 1_700_000_000_000


def test_basic_ingest_topic_is_routed(device, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    train: Device = device("train-002")
    marker = uuid.uuid4().hex
    train.publish(
        "$aws/rules/railpulse_telemetry/trains/train-002/telemetry", _frame("train-002", marker)
    )

    found = raw_stream.wait_for(_has_marker(marker), timeout=10)
    assert found is not None
    envelope = decode(found[1]["Data"])
    assert (envelope.principal, envelope.topic) == ("train-002", "trains/train-002/telemetry")
    assert found[1]["PartitionKey"] == "train-002"


def test_shared_sensor_topic_carries_real_identity_not_claimed_one(
    device, raw_stream: StreamReader
) -> None:  # type: ignore[no-untyped-def]
    sensor: Device = device("sensor-101")
    marker = uuid.uuid4().hex
    # The payload lies: it claims to be sensor-102.
    sensor.publish("iot/sensors", _frame("sensor-102", marker))

    found = raw_stream.wait_for(_has_marker(marker), timeout=10)
    assert found is not None, "iot/sensors frame never reached telemetry-raw"
    envelope = decode(found[1]["Data"])
    assert envelope.principal == "sensor-101"
    assert envelope.topic == "iot/sensors"
    assert found[1]["PartitionKey"] == "sensor-101"
    assert json.loads(envelope.payload)["device_id"] == "sensor-102"


def test_device_cannot_forge_the_client_id_the_broker_stamps(
    stack: dict[str, str], raw_stream: StreamReader
) -> None:
    """An MQTT 5 client sends its own `railpulse-client-id` property claiming another sensor;
    the broker replaces it with the connection's client id (= the certificate's thing)."""
    import ssl
    from pathlib import Path

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    certs = Path(stack["RAILPULSE_CERTS_DIR"])
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="sensor-105", protocol=paho.MQTTv5)
    client.tls_set(
        ca_certs=stack["RAILPULSE_CA_FILE"],
        certfile=str(certs / "sensor-105.crt"),
        keyfile=str(certs / "sensor-105.key"),
        cert_reqs=ssl.CERT_REQUIRED,
    )
    client.connect(stack["RAILPULSE_MQTT_HOST"], int(stack["RAILPULSE_MQTT_PORT"]))
    client.loop_start()
    try:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("railpulse-client-id", "sensor-106")]
        marker = uuid.uuid4().hex
        client.publish(
            "iot/sensors", _frame("sensor-106", marker), qos=1, properties=props
        ).wait_for_publish(10)
        found = raw_stream.wait_for(_has_marker(marker), timeout=10)
        assert found is not None
        assert decode(found[1]["Data"]).principal == "sensor-105"
        assert found[1]["PartitionKey"] == "sensor-105"
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_sensor_cannot_publish_on_a_per_sensor_topic(device, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    sensor: Device = device("sensor-103")
    forged, honest = uuid.uuid4().hex, uuid.uuid4().hex
    sensor.publish("iot/sensors/sensor-104", _frame("sensor-104", forged))
    sensor.publish("iot/sensors", _frame("sensor-103", honest))

    assert raw_stream.wait_for(_has_marker(honest), timeout=10) is not None
    assert not any(_has_marker(forged)(r) for _, r in raw_stream.records)


def test_train_cannot_publish_on_another_trains_topic(device, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    intruder: Device = device("train-003")
    victim: Device = device("train-004")
    victim.subscribe("trains/train-004/#")
    forged, honest = uuid.uuid4().hex, uuid.uuid4().hex

    intruder.publish("trains/train-004/telemetry", _frame("train-004", forged))  # PUBACKed anyway
    victim.publish("trains/train-004/telemetry", _frame("train-004", honest))

    # The honest frame, published after the forged one, arrives; the forged one never does.
    assert raw_stream.wait_for(_has_marker(honest), timeout=10) is not None
    assert victim.inbox.wait_for(lambda t, p: honest.encode() in p, timeout=10) is not None
    assert not any(_has_marker(forged)(r) for _, r in raw_stream.records)
    assert victim.inbox.wait_for(lambda t, p: forged.encode() in p, timeout=0.5) is None


def test_device_added_later_is_registered_and_publishes(stack, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    from stackhelpers import Device, Inbox, aws_client, connect

    from railpulse_devstack import ensure_device

    cert = ensure_device("train-late-001")
    assert cert.cert_path.exists() and cert.key_path.exists()
    iot = aws_client(stack, "iot")
    principals = iot.list_thing_principals(thingName="train-late-001")["principals"]
    assert len(principals) == 1
    described = iot.describe_certificate(certificateId=principals[0].rsplit("/", 1)[1])
    assert described["certificateDescription"]["certificatePem"].strip() == cert.pem().strip()

    late = Device("train-late-001", connect(stack, "train-late-001"), Inbox())
    try:
        marker = uuid.uuid4().hex
        late.publish("trains/train-late-001/telemetry", _frame("train-late-001", marker))
        found = raw_stream.wait_for(_has_marker(marker), timeout=10)
        assert found is not None and decode(found[1]["Data"]).principal == "train-late-001"
    finally:
        late.connection.disconnect().result(10)


def test_a_broker_crash_loses_no_telemetry(stack, raw_stream: StreamReader) -> None:  # type: ignore[no-untyped-def]
    """mosquitto dies (SIGKILL) and `stack up` starts it again. A train that is back and
    publishing before the IoT stand-in has reconnected still reaches telemetry-raw: as with IoT
    Core's rules engine, a message the broker acknowledged is never left without its rule. The
    stand-in is frozen (SIGSTOP) across the restart, so it cannot win the race by luck."""
    import os
    import signal
    import threading

    from stackhelpers import Device, Inbox, connect
    from waiting import wait_until

    from railpulse_devstack import stack as devstack
    from railpulse_devstack.config import load_config
    from railpulse_devstack.procs import alive

    config = load_config()
    pids = {c.name: c.pid for c in devstack.status(config)}
    broker, iot = pids["broker"], pids["iot"]
    assert broker is not None and iot is not None
    os.kill(iot, signal.SIGSTOP)
    restart = threading.Thread(target=devstack.up, args=(config,), daemon=True)
    try:
        os.kill(broker, signal.SIGKILL)
        wait_until(lambda: not alive(broker), 10, "mosquitto to die")
        restart.start()  # waits for the stand-in, which is frozen until after the publish

        def connected() -> Device | None:
            try:
                return Device("train-005", connect(stack, "train-005"), Inbox())
            except Exception:
                return None

        train = wait_until(connected, 30, "the train to reconnect", interval=0.05)
        marker = uuid.uuid4().hex
        train.publish("trains/train-005/telemetry", _frame("train-005", marker))  # PUBACKed
        train.connection.disconnect().result(10)
    finally:
        os.kill(iot, signal.SIGCONT)
    restart.join(60)
    assert not restart.is_alive(), "stack up did not finish"
    assert raw_stream.wait_for(_has_marker(marker), timeout=20) is not None
