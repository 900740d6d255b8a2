"""The broker is as strict as IoT Core: a client id is its certificate's thing, a certificate the
registry does not mark ACTIVE cannot connect (or stay connected), a message over 128 KB is refused
alone, and a record Kinesis refuses costs no other record of the rule's batch."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import pytest
from awscrt import mqtt
from stackhelpers import Device, Inbox, StreamReader, aws_client, connect
from waiting import wait_until

from railpulse_devstack import ensure_device
from railpulse_shared.codec import decode_envelope

pytestmark = pytest.mark.stack


def _frame(device_id: str, marker: str) -> bytes:
    return json.dumps({"device_id": device_id, "marker": marker}).encode()


def _landed(raw_stream: StreamReader, marker: str, timeout: float = 10) -> Any:
    return raw_stream.wait_for(
        lambda r: marker.encode() in decode_envelope(r["Data"]).payload, timeout
    )


def _refused(stack: dict[str, str], name: str, client_id: str | None = None) -> bool:
    try:
        connection = connect(stack, name, client_id)
    except Exception:
        return True
    connection.disconnect().result(10)
    return False


def _certificate_id(stack: dict[str, str], thing: str) -> str:
    iot = aws_client(stack, "iot")
    (principal,) = iot.list_thing_principals(thingName=thing)["principals"]
    return str(principal.rsplit("/", 1)[1])


def test_another_trains_client_id_is_refused_and_the_victims_queued_delta_survives(
    stack: dict[str, str],
) -> None:
    """The victim has a persistent session with a shadow delta queued in it. A connection with
    the intruder's certificate and the victim's client id is refused (IoT Core's policy pins the
    client id to the thing), so it neither takes the session over nor discards it: the victim
    comes back to its session and gets the delta."""
    victim, intruder = "train-victim-001", "train-intruder-001"
    ensure_device(victim)
    ensure_device(intruder)
    delta = f"$aws/things/{victim}/shadow/update/delta"
    first = connect(stack, victim, clean_session=False)
    first.subscribe(delta, mqtt.QoS.AT_LEAST_ONCE)[0].result(10)
    first.disconnect().result(10)

    marker = uuid.uuid4().hex
    iot_data = aws_client(stack, "iot-data", endpoint_url=stack["RAILPULSE_IOT_DATA_ENDPOINT"])
    iot_data.update_thing_shadow(
        thingName=victim, payload=json.dumps({"state": {"desired": {"marker": marker}}})
    )

    for clean in (True, False):
        with pytest.raises(Exception):  # noqa: B017 - awscrt raises its own error types
            connect(stack, intruder, client_id=victim, clean_session=clean)
    assert _refused(stack, intruder, client_id="")  # no id: the broker's own id is not the thing

    inbox = Inbox()
    back = connect(stack, victim, clean_session=False, on_message=inbox)
    try:
        got = inbox.wait_for(lambda t, p: t == delta and marker.encode() in p, timeout=10)
        assert got is not None, "the victim's queued delta was lost"
    finally:
        back.disconnect().result(10)


def test_a_message_over_128_kb_is_refused_and_its_neighbours_all_arrive(
    device: Any, raw_stream: StreamReader
) -> None:
    train: Device = device("train-011")
    other: Device = device("train-012")
    before, after, beside, big = (uuid.uuid4().hex for _ in range(4))
    train.publish("trains/train-011/telemetry", _frame("train-011", before))
    train.publish("trains/train-011/telemetry", _frame("train-011", big) + b" " * (1024 * 1024))
    other.publish("trains/train-012/telemetry", _frame("train-012", beside))
    train.publish("trains/train-011/telemetry", _frame("train-011", after))  # same connection
    # A payload of exactly 128 KB is within the limit.
    edge = uuid.uuid4().hex
    at_limit = _frame("train-011", edge)
    train.publish("trains/train-011/telemetry", at_limit + b" " * (128 * 1024 - len(at_limit)))

    for marker in (before, beside, after, edge):
        assert _landed(raw_stream, marker) is not None, marker
    assert not any(big.encode() in r["Data"] for _, r in raw_stream.records)


def test_one_record_kinesis_refuses_costs_none_of_its_batch_and_is_rejected(
    stack: dict[str, str], raw_stream: StreamReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in's rule delivery against the stack's real Kinesis and SQS: a record over
    Kinesis's 1 MiB limit, batched with valid ones, goes to the rejects queue with its reason
    and the valid ones all land (the broker keeps such messages out; this is the rule's own
    guarantee)."""
    from railpulse_cli.commands.rejects import list_rejects
    from railpulse_devstack.iot.rules import KinesisRule, Rules, aws_sinks
    from railpulse_shared.aws import AwsClients
    from railpulse_shared.config import CommonSettings, load_settings
    from railpulse_shared.topic_rules import TOPIC_RULES

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, stack[name])
    settings = load_settings(CommonSettings, env=stack)
    open_sinks, close_sinks = aws_sinks(
        AwsClients(settings), settings.stream_raw, settings.queue_rejects
    )
    rule = KinesisRule(
        Rules(TOPIC_RULES),
        open_sinks,
        stream=settings.stream_raw,
        linger=0.5,
        close_sinks=close_sinks,
    )
    rule.start()
    good = [uuid.uuid4().hex for _ in range(3)]
    huge = uuid.uuid4().hex
    rule.offer("trains/train-013/telemetry", _frame("train-013", good[0]), "train-013")
    rule.offer(
        "trains/train-013/telemetry", _frame("train-013", huge) + b" " * 1024 * 1024, "train-013"
    )
    rule.offer("trains/train-014/telemetry", _frame("train-014", good[1]), "train-014")
    rule.offer("trains/train-013/telemetry", _frame("train-013", good[2]), "train-013")
    rule.close()
    assert (rule.put_count, rule.rejected_count) == (3, 1)
    for marker in good:
        assert _landed(raw_stream, marker) is not None, marker

    listing = asyncio.run(list_rejects(settings, reason="oversized", samples=1000))
    samples = listing["reasons"]["oversized"]["samples"]
    mine = [
        s for s in samples if s["device"] == "train-013" and "railpulse_telemetry" in s["detail"]
    ]
    assert mine and mine[0]["raw_size"] > 1024 * 1024


def test_a_certificate_not_active_in_the_registry_is_refused_and_dropped_when_revoked(
    stack: dict[str, str],
) -> None:
    iot = aws_client(stack, "iot")
    idle, live = "train-inactive-001", "train-revoked-001"
    ensure_device(idle)
    ensure_device(live)

    idle_cert = _certificate_id(stack, idle)
    iot.update_certificate(certificateId=idle_cert, newStatus="INACTIVE")
    try:
        wait_until(lambda: _refused(stack, idle), 10, "the INACTIVE certificate to be refused")
    finally:
        iot.update_certificate(certificateId=idle_cert, newStatus="ACTIVE")
    wait_until(lambda: not _refused(stack, idle), 10, "the certificate, ACTIVE again, to connect")

    interrupted = threading.Event()
    connection = connect(stack, live, on_connection_interrupted=lambda *a, **k: interrupted.set())
    try:
        iot.update_certificate(certificateId=_certificate_id(stack, live), newStatus="REVOKED")
        assert interrupted.wait(5), "the revoked certificate's connection was not dropped"
        assert _refused(stack, live)
    finally:
        connection.disconnect()
