"""The agent's settings: one frozen Struct, from the environment (RAILPULSE_*) and the command line.

Every field has a `--flag` and an env var (`RAILPULSE_<FIELD>`); the command line wins. The local
stack's env file (`.local/stack/env`) already sets RAILPULSE_MQTT_HOST/PORT, RAILPULSE_CA_FILE and
RAILPULSE_CERTS_DIR, so `railpulse-edge --thing train-001` is enough against it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from railpulse_edge.frames import METERING_UNIT
from railpulse_edge.link import LinkConfig
from railpulse_shared.config import env_name, load_settings
from railpulse_shared.entrypoint import add_version_argument

__all__ = ["HELP", "EdgeSettings", "build_parser", "parse_settings"]

MAX_MESSAGE_BYTES = 128 * 1024
"""IoT Core's message size limit (mosquitto's is larger): backfill batches must fit it."""


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    thing: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 8883
    ca_file: str | None = None
    certs_dir: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None
    topic: str = "trains/{thing}/telemetry"
    basic_ingest_rule: str | None = None
    rate_hz: float = 1.0
    source: str = "sim"
    spool_dir: str = ".local/edge"
    spool_max_frames: int = 7 * 86_400
    spool_max_bytes: int = 512 * 1024 * 1024
    spool_max_age_s: float = 7 * 86_400.0
    spool_sync: Literal["FULL", "NORMAL"] = "FULL"
    backfill_max_bytes: int = 4 * METERING_UNIT
    backfill_rate: float = 5.0
    backfill_window: int = 1
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 60.0
    keep_alive_s: int = 30
    publish_timeout_s: float = 15.0
    shadow: bool = True
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 100:
            raise ValueError("rate_hz must be in (0, 100]")
        if not 0 < self.backfill_max_bytes <= MAX_MESSAGE_BYTES:
            raise ValueError(f"backfill_max_bytes must be in (0, {MAX_MESSAGE_BYTES}]")
        if self.backfill_rate <= 0 or self.backfill_window < 1:
            raise ValueError("backfill_rate must be > 0 and backfill_window >= 1")

    @property
    def publish_topic(self) -> str:
        topic = self.topic.format(thing=self.thing)
        if self.basic_ingest_rule:
            return f"$aws/rules/{self.basic_ingest_rule}/{topic}"
        return topic

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir) / f"{self.thing}.db"

    def link_config(self) -> LinkConfig:
        certs = Path(self.certs_dir) if self.certs_dir else None
        cert = self.cert_file or (str(certs / f"{self.thing}.crt") if certs else None)
        key = self.key_file or (str(certs / f"{self.thing}.key") if certs else None)
        if cert is None or key is None or self.ca_file is None:
            raise ValueError("set --ca-file and --certs-dir (or --cert-file and --key-file)")
        return LinkConfig(
            thing=self.thing,
            host=self.mqtt_host,
            port=self.mqtt_port,
            ca_file=Path(self.ca_file),
            cert_file=Path(cert),
            key_file=Path(key),
            client_id=self.client_id or self.thing,
            keep_alive_s=self.keep_alive_s,
            publish_timeout_s=self.publish_timeout_s,
            reconnect_base_s=self.reconnect_base_s,
            reconnect_cap_s=self.reconnect_cap_s,
        )


HELP: dict[str, str] = {
    "thing": "the train's thing name: its certificate's CN, MQTT client id and topic segment (required)",
    "mqtt_host": "broker host (IoT Core's ATS endpoint in AWS; 127.0.0.1 locally)",
    "mqtt_port": "broker port (8883 for MQTT over mutual TLS)",
    "ca_file": "CA certificate the broker's certificate must chain to (PEM)",
    "certs_dir": "directory holding <thing>.crt and <thing>.key (the local stack's pki/devices)",
    "cert_file": "the train's X.509 certificate (PEM); overrides --certs-dir",
    "key_file": "the train's private key (PEM); overrides --certs-dir",
    "client_id": "MQTT client id (default: the thing name, as IoT policies usually require)",
    "topic": "publish topic; {thing} is replaced by the thing name",
    "basic_ingest_rule": "publish via Basic Ingest, $aws/rules/<RULE>/<topic> (no messaging charge in AWS)",
    "rate_hz": "sampling rate: frames per second from the sensor source",
    "source": "sensor source: 'sim' (one simulated train) or 'package.module:factory'",
    "spool_dir": "directory of the spool (<thing>.db, SQLite in WAL mode)",
    "spool_max_frames": "spool bound in frames; beyond it the oldest frames are evicted (counted, reported)",
    "spool_max_bytes": "spool bound in payload bytes; beyond it the oldest frames are evicted",
    "spool_max_age_s": "frames older than this (by sensor time) are evicted, oldest first",
    "spool_sync": "SQLite synchronous mode: FULL survives power loss, NORMAL only a process crash",
    "backfill_max_bytes": "largest backfill message (FrameBatch); at most 128 KiB, IoT Core's limit",
    "backfill_rate": "backfill messages per second at most (live frames are not counted)",
    "backfill_window": "unacknowledged backfill messages at a time (1 keeps backfill strictly in order)",
    "reconnect_base_s": "first reconnect delay ceiling; doubles per failed attempt (full jitter)",
    "reconnect_cap_s": "largest reconnect delay ceiling",
    "keep_alive_s": "MQTT keep-alive interval",
    "publish_timeout_s": "a publish not acknowledged within this fails and its frames go back to backfill",
    "shadow": "follow the device shadow: surface alerts, acknowledge them, report spool evictions",
    "log_level": "debug, info, warning or error",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="railpulse-edge",
        description=(
            "The railpulse edge agent of one train: samples its sensors, spools every frame "
            "durably (SQLite WAL) before publishing it over MQTT with mutual TLS (QoS 1, persistent "
            "session), removes it only on PUBACK, backfills the spool oldest-first after an outage "
            "while live frames keep flowing, and follows the train's device shadow for alerts. "
            "SIGTERM stops it cleanly with the spool intact. Each option can also be set with the "
            "environment variable shown."
        ),
    )
    add_version_argument(parser, "railpulse-edge")
    for f in msgspec.structs.fields(EdgeSettings):
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is msgspec.NODEFAULT else f.default
        text = f"{HELP[f.name]} [env {env_name(f.name)}]"
        if f.type is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{text} (default: {default})")
        else:
            kwargs: dict[str, Any] = {}
            if f.name == "spool_sync":
                kwargs["choices"] = ["FULL", "NORMAL"]
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(),
                                help=f"{text} (default: {default})", **kwargs)
    return parser


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> EdgeSettings:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return load_settings(EdgeSettings, env, **overrides)
