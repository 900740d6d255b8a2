"""The IoT topic rules, defined once: the CDK stack deploys them and the local stand-in runs them.

Each rule turns one MQTT message into the `RuleEnvelope` contract (`contracts/envelope.py`) and
puts it on Kinesis `telemetry-raw`. In AWS IoT SQL (version 2016-03-23):

- `encode(*, 'base64')` is the message's bytes, whatever they are (JSON or not);
- `topic()` is the topic published to, without a Basic Ingest prefix `$aws/rules/<rule>/`;
- `clientid()` is the MQTT client id. The train policy allows `iot:Connect` only on
  `client/${iot:Connection.Thing.ThingName}` (and the local broker refuses any other), so the
  client id is the authenticated thing. (`principal()` would be the certificate id, a hash.)
- `timestamp()` is when the rules engine received the message, epoch milliseconds.

The partition key is a substitution template of the same SQL functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "SENSORS_RULE",
    "SQL_VERSION",
    "TELEMETRY_RULE",
    "TOPIC_RULES",
    "TopicRuleSpec",
    "envelope_sql",
]

SQL_VERSION: Final = "2016-03-23"


@dataclass(frozen=True, slots=True)
class TopicRuleSpec:
    name: str
    """The rule's name, also its Basic Ingest prefix: `$aws/rules/<name>/<topic>`."""
    sql: str
    partition_key: str
    """A substitution template (`${...}`) for the Kinesis PartitionKey."""


def envelope_sql(topic_filter: str) -> str:
    """The SELECT that produces a `RuleEnvelope` (its field names are the aliases)."""
    return (
        "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS principal, "
        f"timestamp() AS received_ms FROM '{topic_filter}'"
    )


TELEMETRY_RULE: Final = TopicRuleSpec(
    name="railpulse_telemetry",
    sql=envelope_sql("trains/+/telemetry"),
    # Keyed by train, so a train's frames stay in order on one shard.
    partition_key="${clientid()}",
)
SENSORS_RULE: Final = TopicRuleSpec(
    name="railpulse_sensors",
    # Generic sensors share one topic; the client id tells them apart.
    sql=envelope_sql("iot/sensors"),
    partition_key="${clientid()}",
)
TOPIC_RULES: Final = (TELEMETRY_RULE, SENSORS_RULE)
