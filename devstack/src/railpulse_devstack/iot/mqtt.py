"""The stand-in's privileged MQTT client: shadow topics in, shadow responses out, rules fed.

Shadow request topics (classic and named):
    $aws/things/<thing>/shadow/{get,update,delete}
    $aws/things/<thing>/shadow/name/<shadow>/{get,update,delete}
Responses go to `<request topic>/accepted` or `/rejected`; updates also produce
`update/documents` and `update/delta`, whichever API (MQTT or HTTP) made them.

In IoT Core the rules engine is part of the broker: a message a device got PUBACK for is never
left without its rule. Here the stand-in is a separate client, so its session is persistent
(`clean_start=False`, a week's expiry): while it is away (its own restart, or the broker's) the
broker keeps its subscriptions and queues what devices publish, and delivers it on reconnect.
After a broker crash that holds only if the session was in the broker's persistence file: `stack
up` has the broker write it once the stand-in is subscribed (see `railpulse_devstack.stack`).
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from railpulse_devstack.iot.rules import CLIENT_ID_PROPERTY, KinesisRule
from railpulse_devstack.iot.shadow import ShadowError, ShadowStore

__all__ = ["SESSION_EXPIRY_S", "IotMqtt", "MqttSettings", "parse_shadow_topic", "shadow_prefix"]

logger = structlog.get_logger()

SESSION_EXPIRY_S = 7 * 86_400
"""How long the broker keeps the stand-in's subscriptions and queue while it is away."""

SHADOW_SUBSCRIPTIONS = tuple(
    f"$aws/things/+/shadow/{op}" for op in ("get", "update", "delete")
) + tuple(f"$aws/things/+/shadow/name/+/{op}" for op in ("get", "update", "delete"))


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str


def shadow_prefix(thing: str, name: str) -> str:
    return f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "")


def parse_shadow_topic(topic: str) -> tuple[str, str, str] | None:
    """(thing, shadow name or "", op) for a shadow request topic, else None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow":
        return parts[2], "", parts[4]
    if len(parts) == 7 and parts[:2] == ["$aws", "things"] and parts[3:5] == ["shadow", "name"]:
        return parts[2], parts[5], parts[6]
    return None


def _client_id(msg: mqtt.MQTTMessage) -> str | None:
    """The publisher's client id, as the broker stamped it (see `railpulse_devstack.broker`)."""
    props = getattr(msg, "properties", None)
    for name, value in getattr(props, "UserProperty", None) or ():
        if name == CLIENT_ID_PROPERTY:
            return str(value)
    return None


class IotMqtt:
    def __init__(self, settings: MqttSettings, store: ShadowStore, rule: KinesisRule) -> None:
        self._settings = settings
        self._store = store
        self._rule = rule
        self.ready = threading.Event()
        self._pending_subs: set[int] = set()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5
        )
        client.tls_set(
            ca_certs=str(settings.ca_file),
            certfile=str(settings.cert_file),
            keyfile=str(settings.key_file),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        store.subscribe(self._on_shadow_event)

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(
            self._settings.host,
            self._settings.port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def _publish_json(self, topic: str, doc: dict[str, Any]) -> None:
        self.publish(topic, json.dumps(doc, separators=(",", ":")).encode())

    # -- callbacks (paho network thread) -------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            logger.error("mqtt.connect_failed", reason=str(reason))
            return
        topics = [
            (t, SubscribeOptions(qos=1))
            for t in (*SHADOW_SUBSCRIPTIONS, *self._rule.rules.subscriptions())
        ]
        _, mid = client.subscribe(topics)
        if mid is not None:
            self._pending_subs.add(mid)
        logger.info("mqtt.connected", host=self._settings.host, port=self._settings.port)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            logger.error("mqtt.subscribe_failed", reasons=failed)
            return
        self._pending_subs.discard(mid)
        if not self._pending_subs:
            self.ready.set()
            logger.info("mqtt.subscribed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.ready.clear()
        logger.warning("mqtt.disconnected", reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if self._rule.offer(topic, bytes(msg.payload), _client_id(msg)):
            return
        parsed = parse_shadow_topic(topic)
        if parsed is None:
            return
        thing, name, op = parsed
        prefix = f"{shadow_prefix(thing, name)}/{op}"
        try:
            if op == "get":
                self._publish_json(
                    f"{prefix}/accepted", self._store.get(thing, name, bytes(msg.payload))
                )
            elif op == "update":
                self._store.update(thing, name, bytes(msg.payload))  # accepted via _on_shadow_event
            elif op == "delete":
                self._store.delete(thing, name, bytes(msg.payload))
        except ShadowError as err:
            self._publish_json(f"{prefix}/rejected", err.document(self._store._now()))
        except Exception:
            logger.exception("shadow.request_failed", topic=topic)

    def _on_shadow_event(self, thing: str, name: str, event: str, doc: dict[str, Any]) -> None:
        self._publish_json(f"{shadow_prefix(thing, name)}/{event}", doc)
