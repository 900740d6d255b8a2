"""The record the IoT rules stand-in puts on Kinesis `telemetry-raw`.

Every Kinesis record's Data is one JSON object (UTF-8), a `RuleRecord`:

    {"rule": "telemetry",                 the rule that routed it
     "topic": "trains/train-007/telemetry",  the topic the device published to (a Basic Ingest
                                           prefix `$aws/rules/<rule>/` is removed, as topic() does)
     "principal": "train-007",            the authenticated device: its certificate CN / thing name
     "received_ms": 1764371234567,        when the broker delivered it to the rule, epoch ms
     "payload": "<base64>"}               the device's payload bytes, untouched

and its PartitionKey is `principal`. This is what an AWS IoT rule produces with
`SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS principal,
timestamp() AS received_ms, 'telemetry' AS rule FROM 'trains/+/telemetry'` (the IoT policy pins
the client id to `${iot:Connection.Thing.ThingName}`) and a Kinesis action with
`partitionKey = ${clientid()}`. Ingest compares `principal` with the device id the payload
claims, and `topic` with the train the topic names.

Locally the principal comes from the broker: for `trains/<thing>/...` the ACL guarantees that the
publisher is `<thing>`; for the shared `iot/sensors` topic the broker plugin (see
`railpulse_devstack.broker`) rewrites the topic to `iot/sensors/<username>`.
"""

from __future__ import annotations

import msgspec

__all__ = ["RuleRecord", "decode", "encode"]


class RuleRecord(msgspec.Struct, frozen=True, kw_only=True):
    rule: str
    topic: str
    principal: str
    received_ms: int
    payload: bytes


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RuleRecord)


def encode(record: RuleRecord) -> bytes:
    return _encoder.encode(record)


def decode(data: bytes) -> RuleRecord:
    return _decoder.decode(data)
