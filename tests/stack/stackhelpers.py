"""Helpers for tests against the running local stack: device connections, a Kinesis reader."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from awscrt import mqtt
from awsiot import mqtt_connection_builder
from waiting import wait_until

from railpulse_devstack.env import s3_endpoint


@dataclass
class Inbox:
    """Messages received on subscribed topics, with a condition wait."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, topic: str, payload: bytes, **_: Any) -> None:
        with self.cond:
            self.messages.append((topic, bytes(payload)))
            self.cond.notify_all()

    def wait_for(
        self, pred: Callable[[str, bytes], bool], timeout: float
    ) -> tuple[str, bytes] | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for msg in self.messages:
                    if pred(*msg):
                        return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)


@dataclass
class Device:
    name: str
    connection: mqtt.Connection
    inbox: Inbox

    def subscribe(self, topic: str) -> None:
        future, _ = self.connection.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, callback=self.inbox)
        future.result(10)

    def publish(self, topic: str, payload: bytes) -> None:
        future, _ = self.connection.publish(topic, payload, mqtt.QoS.AT_LEAST_ONCE)
        future.result(10)


def connect(
    env: dict[str, str],
    name: str,
    client_id: str | None = None,
    *,
    clean_session: bool = True,
    on_message: Callable[..., None] | None = None,
    **builder: Any,
) -> mqtt.Connection:
    """Connect as the device `name` (its certificate); the client id is the thing name, as the
    broker (and IoT Core's policy) requires."""
    certs = Path(env["RAILPULSE_CERTS_DIR"])
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint=env["RAILPULSE_MQTT_HOST"],
        port=int(env["RAILPULSE_MQTT_PORT"]),
        cert_filepath=str(certs / f"{name}.crt"),
        pri_key_filepath=str(certs / f"{name}.key"),
        ca_filepath=env["RAILPULSE_CA_FILE"],
        client_id=client_id if client_id is not None else name,
        clean_session=clean_session,
        keep_alive_secs=30,
        **builder,
    )
    if on_message is not None:  # before connecting: a resumed session delivers at once
        connection.on_message(on_message)
    connection.connect().result(10)
    return connection


def aws_client(env: dict[str, str], service: str, **kwargs: Any) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=kwargs.pop(
            "endpoint_url", s3_endpoint(env) if service == "s3" else env["AWS_ENDPOINT_URL"]
        ),
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        **kwargs,
    )


class StreamReader:
    """Reads every shard of a stream from the records put after it was created."""

    def __init__(self, kinesis: Any, stream: str) -> None:
        self._kinesis = kinesis
        self._iterators: dict[str, str] = {}
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            it = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            self._iterators[shard["ShardId"]] = it
        self.records: list[tuple[str, dict[str, Any]]] = []

    def poll(self) -> None:
        for shard_id, it in list(self._iterators.items()):
            resp = self._kinesis.get_records(ShardIterator=it, Limit=1000)
            self._iterators[shard_id] = resp["NextShardIterator"]
            self.records.extend((shard_id, r) for r in resp["Records"])

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[str, dict[str, Any]] | None:
        """The first record `pred` accepts, read within `timeout` (None if there is none)."""

        def found() -> tuple[str, dict[str, Any]] | None:
            self.poll()
            return next(((s, r) for s, r in self.records if pred(r)), None)

        try:
            return wait_until(found, timeout, "a matching record")
        except TimeoutError:
            return None
