"""Helpers for the notifier tests: isolated AWS resources on the running stack, a running
notifier task, anomalies, and condition waits with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from awscrt import mqtt
from awsiot import iotshadow, mqtt_connection_builder

from railpulse_notifier.handlers import Notified
from railpulse_notifier.service import NotifierService, open_service
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.codec import encode
from railpulse_shared.config import load_settings
from railpulse_shared.contracts import Anomaly, AnomalyKind, Attribution, Severity
from railpulse_shared.shutdown import GracefulShutdown


def client(env: dict[str, str], service: str, endpoint: str | None = None) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint or env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class Resources:
    """A queue (with its DLQ), an alarm table and an events stream of one's own, so tests never
    consume a colleague's alerts or see their alarms."""

    env: dict[str, str]
    queue_url: str
    dlq_url: str
    table: str
    stream: str
    trains: set[str] = field(default_factory=set)
    """Trains alerts were sent for: their shadows are deleted afterwards."""

    @classmethod
    def create(cls, env: dict[str, str], max_receive: int = 3) -> Resources:
        run = uuid.uuid4().hex[:8]
        sqs, ddb, kinesis = client(env, "sqs"), client(env, "dynamodb"), client(env, "kinesis")
        dlq_url = sqs.create_queue(QueueName=f"nt-{run}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(
            QueueName=f"nt-{run}",
            Attributes={"RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})},
        )["QueueUrl"]
        table = f"nt-alarms-{run}"
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "train", "AttributeType": "S"},
                                  {"AttributeName": "alert_key", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "train", "KeyType": "HASH"},
                       {"AttributeName": "alert_key", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        stream = f"nt-events-{run}"
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(
            StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        return cls(env, queue_url, dlq_url, table, stream)

    def delete(self) -> None:
        """Drop what `create` made: moto keeps everything in memory, and grows slower with it."""
        sqs, ddb, kinesis = (client(self.env, s) for s in ("sqs", "dynamodb", "kinesis"))
        for call in (lambda: sqs.delete_queue(QueueUrl=self.queue_url),
                     lambda: sqs.delete_queue(QueueUrl=self.dlq_url),
                     lambda: ddb.delete_table(TableName=self.table),
                     lambda: kinesis.delete_stream(StreamName=self.stream,
                                                   EnforceConsumerDeletion=True)):
            with contextlib.suppress(Exception):
                call()
        iot = client(self.env, "iot-data", self.env["RAILPULSE_IOT_DATA_ENDPOINT"])
        for train in self.trains:
            with contextlib.suppress(Exception):
                iot.delete_thing_shadow(thingName=train)

    def settings(self, **overrides: Any) -> NotifierSettings:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            # The stack's own: its IoT stand-in refuses requests signed with any other.
            os.environ[key] = self.env[key]
        base: dict[str, Any] = {
            "queue_alerts_url": self.queue_url, "alarm_table": self.table,
            "stream_events": self.stream, "wait_time_s": 1, "visibility_timeout_s": 6,
            "metrics_sink": "stderr", "sweep_interval_s": 0.2,
        }
        base.update(overrides)
        return load_settings(NotifierSettings, env=self.env, **base)

    def send(self, *anomalies: Anomaly) -> None:
        self.trains.update(a.train for a in anomalies)
        sqs = client(self.env, "sqs")
        for i in range(0, len(anomalies), 10):
            sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(j), "MessageBody": encode(a).decode()}
                for j, a in enumerate(anomalies[i:i + 10])])

    def events(self) -> list[dict[str, Any]]:
        kinesis = client(self.env, "kinesis")
        shard = kinesis.list_shards(StreamName=self.stream)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        out: list[dict[str, Any]] = []
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=1000)
            out.extend(json.loads(r["Data"]) for r in resp["Records"])
            if not resp["Records"]:
                break
            it = resp.get("NextShardIterator")
        return out

    def items(self, train: str) -> list[dict[str, Any]]:
        ddb = client(self.env, "dynamodb")
        resp = ddb.query(TableName=self.table, KeyConditionExpression="train = :t",
                         ExpressionAttributeValues={":t": {"S": train}}, ConsistentRead=True)
        return [json.loads(i["doc"]["S"]) | {"version": int(i["version"]["N"])}
                for i in resp["Items"]]

    def shadow(self, train: str) -> dict[str, Any]:
        iot = client(self.env, "iot-data", self.env["RAILPULSE_IOT_DATA_ENDPOINT"])
        doc: dict[str, Any] = json.loads(iot.get_thing_shadow(thingName=train)["payload"].read())
        return doc


def anomaly(train: str, key: str = "limit:bearing_temp_c", severity: Severity = Severity.WARNING,
            *, ts_ms: int | None = None, anomaly_id: str | None = None) -> Anomaly:
    return Anomaly(
        anomaly_id=anomaly_id or uuid.uuid4().hex, train=train,
        ts_ms=ts_ms if ts_ms is not None else int(time.time() * 1000), frame_seq=1,
        category=AnomalyKind.LIMIT, severity=severity, score=1.0, threshold=0.5, alert_key=key,
        channels=[Attribution(channel=key.split(":")[-1], contribution=1.0)],
        message=f"{key} out of range",
    )


@dataclass
class Seen:
    """What the notifier reported done, with an asyncio condition wait."""

    items: list[Notified] = field(default_factory=list)

    def __call__(self, notified: Notified) -> None:
        self.items.append(notified)

    async def until(self, pred: Callable[[list[Notified]], bool], within: float) -> bool:
        deadline = time.monotonic() + within
        while not pred(self.items):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    @staticmethod
    async def until_all(a: Seen, b: Seen, count: int, within: float) -> bool:
        return await a.until(lambda _: len(a.items) + len(b.items) >= count, within)


async def until(pred: Callable[[], bool], within: float, every: float = 0.1) -> bool:
    """Poll a (blocking, quick) condition until it holds or the deadline passes."""
    deadline = time.monotonic() + within
    while True:
        if await asyncio.to_thread(pred):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


def poll_until(pred: Callable[[], bool], within: float, every: float = 0.1) -> bool:
    """`until` for synchronous tests."""
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


@contextlib.asynccontextmanager
async def running(settings: NotifierSettings, seen: Seen | None = None,
                  ) -> AsyncIterator[NotifierService]:
    """A notifier task (consumer + sweeper) running in this event loop until the block ends."""
    shutdown = GracefulShutdown(signals=())
    async with open_service(settings, seen) as service:
        tasks = [asyncio.create_task(service.consumer.run(shutdown)),
                 asyncio.create_task(service.sweep_forever(shutdown))]
        try:
            yield service
        finally:
            shutdown.request()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)


class Inbox:
    """Events from awsiotsdk callbacks (its threads), with their arrival wall time."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, event: Any) -> None:
        with self._cond:
            self.items.append((time.time(), event))
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[Any], bool], within: float) -> tuple[float, Any] | None:
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                for at, event in self.items:
                    if pred(event):
                        return at, event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


class Train:
    """A minimal train: mutual-TLS MQTT connection and awsiotsdk's IotShadowClient (the edge
    agent is not on main yet)."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        certs = Path(env["RAILPULSE_CERTS_DIR"])
        self.connection = mqtt_connection_builder.mtls_from_path(
            endpoint=env["RAILPULSE_MQTT_HOST"], port=int(env["RAILPULSE_MQTT_PORT"]),
            cert_filepath=str(certs / f"{name}.crt"), pri_key_filepath=str(certs / f"{name}.key"),
            ca_filepath=env["RAILPULSE_CA_FILE"], client_id=name,  # the broker, like an IoT policy, pins the client id to the thing
            clean_session=True, keep_alive_secs=30,
        )
        self.connection.connect().result(10)
        self.shadow = iotshadow.IotShadowClient(self.connection)
        self.deltas, self.got = Inbox(), Inbox()
        qos = mqtt.QoS.AT_LEAST_ONCE
        for future in (
            self.shadow.subscribe_to_shadow_delta_updated_events(
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=name), qos,
                self.deltas)[0],
            self.shadow.subscribe_to_get_shadow_accepted(
                iotshadow.GetShadowSubscriptionRequest(thing_name=name), qos, self.got)[0],
        ):
            future.result(10)

    def get(self) -> Any:
        """The shadow as a reconnecting train reads it (GetShadow over MQTT)."""
        token = uuid.uuid4().hex[:12]
        self.shadow.publish_get_shadow(
            iotshadow.GetShadowRequest(thing_name=self.name, client_token=token),
            mqtt.QoS.AT_LEAST_ONCE).result(10)
        got = self.got.wait_for(lambda r: r.client_token == token, 5)
        assert got is not None, "no get/accepted"
        return got[1]

    def ack(self, alarm_ids: list[str]) -> None:
        self.shadow.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=self.name,
                state=iotshadow.ShadowState(reported={"alerts": {"acked": alarm_ids}}),
                client_token=uuid.uuid4().hex[:12]),
            mqtt.QoS.AT_LEAST_ONCE).result(10)

    def close(self) -> None:
        self.connection.disconnect().result(10)


def open_alerts(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    alerts = (state or {}).get("alerts") or {}
    found: list[dict[str, Any]] = alerts.get("open") or []
    return found
