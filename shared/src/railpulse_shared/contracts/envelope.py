"""What the IoT rule puts on Kinesis `telemetry-raw`: the device's bytes plus who sent them.

The rule's SQL is defined once, in `railpulse_shared.topic_rules` (deployed by CDK, run by the
local stand-in): `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS principal,
timestamp() AS received_ms FROM 'trains/+/telemetry'` (and the same for `iot/sensors`),
so any payload, even one that is not JSON, arrives intact. `principal` is the client id of the
publishing connection, which the IoT policy pins to the thing name: ingest rejects a payload that
claims to be another device.
"""

from __future__ import annotations

from railpulse_shared.contracts._base import Wire
from railpulse_shared.contracts.telemetry import EpochMs

__all__ = ["RuleEnvelope"]


class RuleEnvelope(Wire, frozen=True):
    """One MQTT message as the topic rule forwards it (JSON; `payload` is base64)."""

    topic: str
    principal: str
    received_ms: EpochMs
    payload: bytes
