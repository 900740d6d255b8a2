"""The rules stand-in: the shared rule SQL parsed and run, the envelope, batch isolation, fleet
configuration (no stack needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from railpulse_devstack.config import expand_fleet, load_config
from railpulse_devstack.iot.rules import KinesisRule, Rules
from railpulse_devstack.iot.sql import Message, SqlError, compile_sql, compile_template
from railpulse_ingest.decode import decode_envelope as ingest_decode_envelope
from railpulse_shared import codec
from railpulse_shared.codec import decode_envelope, encode
from railpulse_shared.contracts import RejectedRecord, RejectReason, RuleEnvelope
from railpulse_shared.publish import KinesisPublisher, PutFailure, Retry
from railpulse_shared.topic_rules import TOPIC_RULES

RULES = Rules(TOPIC_RULES)


def _run(topic: str, payload: bytes = b"{}", client_id: str | None = "train-001") -> list[Any]:
    return RULES.run(topic, payload, client_id, 1_764_000_000_000)


def test_the_stand_in_subscribes_to_each_rules_filter_and_its_basic_ingest_form() -> None:
    assert set(RULES.subscriptions()) == {
        "trains/+/telemetry",
        "$aws/rules/railpulse_telemetry/trains/+/telemetry",
        "iot/sensors",
        "$aws/rules/railpulse_sensors/iot/sensors",
    }


def test_telemetry_rule_writes_the_envelope_ingest_accepts() -> None:
    (record,) = _run("trains/train-001/telemetry", b'{"kind":"frame.v1"}\xff')
    assert record.partition_key == "train-001"
    envelope = ingest_decode_envelope(record.data)
    assert envelope == RuleEnvelope(
        topic="trains/train-001/telemetry",
        principal="train-001",
        received_ms=1_764_000_000_000,
        payload=b'{"kind":"frame.v1"}\xff',
    )
    assert decode_envelope(record.data) == envelope  # the contract's own decoder agrees


def test_basic_ingest_runs_only_the_named_rule_and_topic_drops_the_prefix() -> None:
    (record,) = _run("$aws/rules/railpulse_telemetry/trains/train-001/telemetry")
    assert decode_envelope(record.data).topic == "trains/train-001/telemetry"
    assert _run("$aws/rules/no_such_rule/trains/train-001/telemetry") == []
    assert _run("$aws/rules/railpulse_sensors/trains/train-001/telemetry") == []  # not its FROM


def test_sensor_rule_takes_identity_from_the_client_id_not_the_payload() -> None:
    (record,) = _run("iot/sensors", b'{"device_id":"sensor-102"}', client_id="sensor-101")
    envelope = decode_envelope(record.data)
    assert (envelope.topic, envelope.principal, record.partition_key) == (
        "iot/sensors",
        "sensor-101",
        "sensor-101",
    )


def test_other_topics_trigger_no_rule() -> None:
    assert _run("trains/train-001/status") == []
    assert _run("iot/sensors/sensor-101") == []


def test_an_unknown_client_id_leaves_principal_out_and_ingest_rejects_it() -> None:
    (record,) = _run("trains/train-001/telemetry", client_id=None)
    assert "principal" not in json.loads(record.data)
    assert record.partition_key == ""


def test_sql_functions_follow_iot_sql() -> None:
    rule = compile_sql(
        "select topic(2) as t2, topic(9) as t9, encode('ab', 'base64') as e, 3 as n, "
        "'it''s' as s FROM 'a/#'"
    )
    out = rule.evaluate(Message("a/b/c", b"", None, 5))
    assert out == {"t2": "b", "e": "YWI=", "n": 3, "s": "it's"}  # topic(9) is Undefined
    assert compile_sql("SELECT * FROM 'a/+'").output(Message("a/x", b"\x00raw", None, 1)) == (
        b"\x00raw"
    )
    assert rule.matches("a") and rule.matches("a/b/c/d")
    plus = compile_sql("SELECT * FROM 'a/+/c'")
    assert plus.matches("a/b/c") and not plus.matches("a/b/c/d") and not plus.matches("a/c")
    assert compile_template("k-${topic(1)}-${clientid()}").render(Message("a", b"", "me", 0)) == (
        "k-a-me"
    )


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT * FROM 'a' WHERE x > 1", "WHERE is not supported"),
        ("SELECT temperature AS t FROM 'a'", "payload attribute 'temperature'"),
        ("SELECT principal() AS p FROM 'a'", "principal() is the certificate id"),
        ("SELECT newuuid() AS u FROM 'a'", "function newuuid() is not supported"),
        ("SELECT encode(*, 'hex') AS p FROM 'a'", "only the 'base64' scheme"),
        ("SELECT topic() FROM 'a'", "with AS"),
        ("SELECT topic() AS t, clientid() AS t FROM 'a'", "used twice"),
        ("SELECT * FROM a", "quoted topic filter"),
        ("SELECT * FROM 'a/#/b'", "malformed topic filter"),
        ("SELECT * FROM '$aws/rules/r/a'", "not a Basic Ingest topic"),
        ("SELECT * 'a'", "expected FROM"),
        ("DELETE FROM 'a'", "starts with SELECT"),
        ("SELECT topic( AS t FROM 'a'", "unexpected"),
        ("SELECT * FROM 'a' ;", "unexpected ';' at 18"),
        ("SELECT timestamp(1) AS t FROM 'a'", "takes no arguments"),
    ],
)
def test_sql_outside_the_subset_is_refused_with_a_clear_error(sql: str, says: str) -> None:
    with pytest.raises(SqlError) as err:
        compile_sql(sql)
    assert says in str(err.value), str(err.value)


def test_envelope_round_trip_is_json_with_base64_payload() -> None:
    rec = RuleEnvelope(topic="iot/sensors", principal="s", received_ms=1, payload=b"\x00\xff")
    data = encode(rec)
    assert b'"payload":"AP8="' in data
    assert decode_envelope(data) == rec


# -- delivery ----------------------------------------------------------------------------------


class _FakeKinesis:
    """PutRecords with moto's rule for a record over 1 MiB (the whole call is refused)."""

    def __init__(self, throttle_once: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.throttle_once = throttle_once

    async def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append(Records)
        if any(len(r["Data"]) > 1024 * 1024 for r in Records):
            raise ClientError({"Error": {"Code": "ValidationException"}}, "PutRecords")
        out: list[dict[str, Any]] = []
        for r in Records:
            if self.throttle_once and b"throttle" in r["Data"]:
                self.throttle_once -= 1
                out.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                out.append({"SequenceNumber": str(len(self.calls))})
        return {"Records": out}


class _Rejects:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def send(self, bodies: Sequence[str]) -> None:
        self.bodies.extend(bodies)


def _rule(kinesis: _FakeKinesis, rejects: _Rejects) -> KinesisRule:
    publisher = KinesisPublisher(kinesis, "telemetry-raw", Retry(attempts=3, base_s=0.001))

    async def open_sinks() -> Any:
        return publisher, rejects

    return KinesisRule(RULES, open_sinks, linger=0.2)


def test_a_record_kinesis_refuses_costs_no_other_record_and_is_rejected_with_its_bytes() -> None:
    kinesis, rejects = _FakeKinesis(throttle_once=1), _Rejects()
    rule = _rule(kinesis, rejects)
    rule.start()
    assert rule.offer("trains/train-001/telemetry", b"before", "train-001")
    assert rule.offer("trains/train-001/telemetry", b"x" * (1024 * 1024), "train-001")
    assert rule.offer("trains/train-002/telemetry", b"throttle", "train-002")
    assert rule.offer("trains/train-001/telemetry", b"after", "train-001")
    rule.close()
    put = [decode_envelope(r["Data"]).payload for call in kinesis.calls for r in call]
    assert {b"before", b"throttle", b"after"} <= set(put)
    assert rule.put_count == 3 and rule.rejected_count == 1
    (body,) = rejects.bodies
    reject = codec.decode_event(body.encode())
    assert isinstance(reject, RejectedRecord)
    assert reject.reason is RejectReason.OVERSIZED and reject.device == "train-001"
    assert reject.raw_size > 1024 * 1024 and "railpulse_telemetry" in reject.detail


def test_put_each_isolates_a_record_refused_with_the_call() -> None:
    kinesis = _FakeKinesis()

    async def go() -> list[str | PutFailure]:
        # Bypass the size pre-check with a fake limit: the call itself is refused.
        publisher = KinesisPublisher(kinesis, "s", Retry(attempts=2, base_s=0.001))
        import railpulse_shared.publish as publish

        limit = publish.KINESIS_MAX_RECORD_BYTES
        publish.KINESIS_MAX_RECORD_BYTES = 10 * limit
        try:
            return await publisher.put_each(
                [("k", b"a"), ("k", b"b" * (limit + 1)), ("k", b"c"), ("k", b"d")]
            )
        finally:
            publish.KINESIS_MAX_RECORD_BYTES = limit

    outcomes = asyncio.run(go())
    assert [isinstance(o, str) for o in outcomes] == [True, False, True, True]
    failure = outcomes[1]
    assert isinstance(failure, PutFailure) and failure.permanent


def test_fleet_expansion_and_default_fleet() -> None:
    assert expand_fleet("train-001..train-003,sensor-9") == (
        "train-001",
        "train-002",
        "train-003",
        "sensor-9",
    )
    fleet = load_config({}).fleet
    assert len(fleet) == 27 and fleet[0] == "train-001" and fleet[-1] == "sensor-107"
