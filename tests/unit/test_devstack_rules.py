"""The rules stand-in's routing, envelope and fleet configuration (no stack needed)."""

from __future__ import annotations

from typing import Any

from railpulse_devstack.config import expand_fleet, load_config
from railpulse_devstack.iot.rules import KinesisRule, route
from railpulse_shared.codec import decode_envelope, encode
from railpulse_shared.contracts import RuleEnvelope


def test_route() -> None:
    r = route("trains/train-001/telemetry")
    assert r is not None and (r.topic, r.principal) == ("trains/train-001/telemetry", "train-001")
    r = route("$aws/rules/telemetry/trains/train-002/telemetry")
    assert r is not None and (r.topic, r.principal) == ("trains/train-002/telemetry", "train-002")
    r = route("iot/sensors/sensor-101")
    assert r is not None and (r.topic, r.principal) == ("iot/sensors", "sensor-101")
    assert route("iot/sensors") is None
    assert route("trains/train-001/status") is None


def test_envelope_round_trip_is_json_with_base64_payload() -> None:
    rec = RuleEnvelope(topic="iot/sensors", principal="s", received_ms=1, payload=b"\x00\xff")
    data = encode(rec)
    assert b'"payload":"AP8="' in data
    assert decode_envelope(data) == rec


class _FakeKinesis:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        return {"Records": [{"SequenceNumber": "1"} for _ in Records], "FailedRecordCount": 0}


def test_rule_batches_records_with_principal_partition_key() -> None:
    fake = _FakeKinesis()
    rule = KinesisRule(fake, "telemetry-raw", linger=0.05)
    rule.start()
    for i in range(5):
        assert rule.offer(f"trains/train-00{i}/telemetry", b"x")
    assert not rule.offer("elsewhere", b"x")
    rule.close()
    records = [r for call in fake.calls for r in call]
    assert [r["PartitionKey"] for r in records] == [f"train-00{i}" for i in range(5)]
    assert decode_envelope(records[0]["Data"]).topic == "trains/train-000/telemetry"
    assert len(fake.calls) < 5
    assert rule.put_count == 5


def test_fleet_expansion_and_default_fleet() -> None:
    assert expand_fleet("train-001..train-003,sensor-9") == (
        "train-001",
        "train-002",
        "train-003",
        "sensor-9",
    )
    fleet = load_config({}).fleet
    assert len(fleet) == 27 and fleet[0] == "train-001" and fleet[-1] == "sensor-107"
