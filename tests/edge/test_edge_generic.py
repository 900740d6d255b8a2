"""The simulator publishes the seed-003 flat payloads, each from its own device identity."""

from __future__ import annotations

import asyncio
from pathlib import Path

import boto3
import pytest
from waiting import wait_until

from railpulse_edge.fleet import ensure_certs, publish_generic
from railpulse_edge.sim.generic import GENERIC_CASES
from railpulse_shared.codec import decode_envelope

pytestmark = pytest.mark.stack


def test_generic_payloads_reach_the_raw_stream_with_their_publishers_identity(
    stack: dict[str, str],
) -> None:
    certs = Path(stack["RAILPULSE_CERTS_DIR"])
    ensure_certs(sorted({d for d, _ in GENERIC_CASES}), certs, stack["AWS_ENDPOINT_URL"])
    kinesis = boto3.client(
        "kinesis", endpoint_url=stack["AWS_ENDPOINT_URL"], region_name=stack["AWS_REGION"],
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"], aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
    )
    stream = stack["RAILPULSE_STREAM_RAW"]
    iterators = [
        kinesis.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"], ShardIteratorType="LATEST")[
            "ShardIterator"
        ]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
    ]
    sent = asyncio.run(publish_generic(stack["RAILPULSE_MQTT_HOST"], int(stack["RAILPULSE_MQTT_PORT"]),
                                       Path(stack["RAILPULSE_CA_FILE"]), certs))
    assert sent == len(GENERIC_CASES)

    got: list[tuple[str, bytes]] = []

    def poll() -> bool:
        for i, it in enumerate(iterators):
            resp = kinesis.get_records(ShardIterator=it, Limit=1000)
            iterators[i] = resp["NextShardIterator"]
            for r in resp["Records"]:
                env = decode_envelope(r["Data"])
                if env.topic == "iot/sensors" and (env.principal, env.payload) in GENERIC_CASES:
                    got.append((env.principal, env.payload))
        return set(GENERIC_CASES) <= set(got)

    wait_until(poll, 30, what="the eight generic payloads")
