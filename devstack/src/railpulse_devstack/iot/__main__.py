"""`python -m railpulse_devstack.iot`: the local IoT Core stand-in (rules + shadow service).

Reads the stack env (the variables of `<state>/env`, passed by `railpulse stack up`).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import structlog

from railpulse_devstack._logging import configure
from railpulse_devstack.aws import client
from railpulse_devstack.broker import deny_file
from railpulse_devstack.iot.http import DataPlaneServer
from railpulse_devstack.iot.mqtt import IotMqtt, MqttSettings
from railpulse_devstack.iot.registry_watch import RegistryWatch
from railpulse_devstack.iot.rules import KinesisRule, Rules, aws_sinks
from railpulse_devstack.iot.shadow import ShadowStore
from railpulse_devstack.iot.sigv4 import SigningKey
from railpulse_shared.aws import AwsClients
from railpulse_shared.config import CommonSettings, load_settings
from railpulse_shared.topic_rules import TOPIC_RULES

logger = structlog.get_logger()


def main() -> None:
    configure(json=True)
    env = os.environ
    identity = env["RAILPULSE_IOT_IDENTITY"]
    certs = Path(env["RAILPULSE_CERTS_DIR"])
    data_endpoint = env["RAILPULSE_IOT_DATA_ENDPOINT"].removeprefix("http://")
    http_host, http_port = data_endpoint.rsplit(":", 1)

    store = ShadowStore(Path(env["RAILPULSE_STACK_DIR"]) / "iot" / "shadows.json")
    settings = load_settings(CommonSettings, env=env)
    open_sinks, close_sinks = aws_sinks(
        AwsClients(settings), settings.stream_raw, settings.queue_rejects
    )
    rule = KinesisRule(
        Rules(TOPIC_RULES), open_sinks, stream=settings.stream_raw, close_sinks=close_sinks
    )
    mqtt = IotMqtt(
        MqttSettings(
            host=env["RAILPULSE_MQTT_HOST"],
            port=int(env["RAILPULSE_MQTT_PORT"]),
            ca_file=Path(env["RAILPULSE_CA_FILE"]),
            cert_file=certs / f"{identity}.crt",
            key_file=certs / f"{identity}.key",
            client_id=identity,
        ),
        store,
        rule,
    )
    # The HTTP API accepts only requests signed by the credentials the stack issued.
    key = SigningKey(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"])
    server = DataPlaneServer(http_host, int(http_port), store, mqtt, key)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    watch = RegistryWatch(
        client("iot", env["AWS_ENDPOINT_URL"]), deny_file(Path(env["RAILPULSE_STACK_DIR"]))
    )
    watch.start()
    rule.start()
    mqtt.start()
    server.start()
    logger.info("iot.started", http=f"{http_host}:{http_port}")
    stop.wait()
    logger.info("iot.stopping")
    server.stop()
    watch.stop()
    mqtt.stop()
    rule.close()
    store.close()
    logger.info("iot.stopped", records_put=rule.put_count, records_rejected=rule.rejected_count)


if __name__ == "__main__":
    main()
