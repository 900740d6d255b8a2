"""Where the local stack lives and which ports it uses.

Everything is derived once from the environment by `load_config()`:

| env var | default | meaning |
|---|---|---|
| `RAILPULSE_STACK_DIR` | `<repo>/.local/stack` | state: pid files, logs, PKI, data |
| `RAILPULSE_MOTO_PORT` | 4566 | moto (every AWS API but S3) served by hypercorn, HTTP/1.1 + h2c |
| `RAILPULSE_MOTO_S3_PORT` | 4567 | moto for S3 alone (`AWS_ENDPOINT_URL_S3`), a process of its own |
| `RAILPULSE_MQTT_PORT` | 8883 | mosquitto, mutual TLS |
| `RAILPULSE_PG_PORT` | 5433 | PostgreSQL 15 |
| `RAILPULSE_IOT_DATA_PORT` | 4580 | IoT data-plane stand-in (shadow HTTP API) |
| `RAILPULSE_FLEET` | `train-001..train-020,sensor-101..sensor-107` | devices given a certificate at start |

The fleet syntax is a comma-separated list of names or `prefix-NNN..prefix-MMM` ranges.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_FLEET",
    "HOST",
    "PRIVILEGED_IDENTITY",
    "PortSpec",
    "StackConfig",
    "expand_fleet",
    "load_config",
    "repo_root",
]

HOST = "127.0.0.1"
DEFAULT_FLEET = "train-001..train-020,sensor-101..sensor-107"
PRIVILEGED_IDENTITY = "railpulse-iot-core"
"""Certificate CN (and MQTT username) of the IoT Core stand-in: the one privileged client."""

_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<a>\d+)\.\.(?P=prefix)(?P<b>\d+)$")


@dataclass(frozen=True, slots=True)
class PortSpec:
    component: str
    env_var: str
    port: int


@dataclass(frozen=True, slots=True)
class StackConfig:
    root: Path
    state_dir: Path
    moto_port: int
    mqtt_port: int
    pg_port: int
    iot_data_port: int
    fleet: tuple[str, ...]
    moto_s3_port: int = 0
    """S3's own moto process (0: S3 is served by the one moto, as in the container stack)."""
    host: str = HOST

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    def ports(self) -> tuple[PortSpec, ...]:
        return (
            PortSpec("moto (AWS APIs)", "RAILPULSE_MOTO_PORT", self.moto_port),
            PortSpec("moto (S3)", "RAILPULSE_MOTO_S3_PORT", self.moto_s3_port),
            PortSpec("mosquitto (MQTT over mutual TLS)", "RAILPULSE_MQTT_PORT", self.mqtt_port),
            PortSpec("PostgreSQL", "RAILPULSE_PG_PORT", self.pg_port),
            PortSpec("IoT data-plane stand-in", "RAILPULSE_IOT_DATA_PORT", self.iot_data_port),
        )


def repo_root() -> Path:
    """The workspace root: the nearest parent holding the uv workspace pyproject."""
    here = Path(__file__).resolve()
    for parent in [*here.parents, Path.cwd(), *Path.cwd().parents]:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return parent
    return Path.cwd()


def expand_fleet(spec: str) -> tuple[str, ...]:
    names: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        match = _RANGE.match(item)
        if match is None:
            names.append(item)
            continue
        a, b = match["a"], match["b"]
        width = len(a)
        names.extend(f"{match['prefix']}{i:0{width}d}" for i in range(int(a), int(b) + 1))
    return tuple(dict.fromkeys(names))


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    return int(raw) if raw.strip() else default


def load_config(env: Mapping[str, str] | None = None) -> StackConfig:
    env = os.environ if env is None else env
    root = repo_root()
    state = Path(env.get("RAILPULSE_STACK_DIR") or root / ".local" / "stack").resolve()
    return StackConfig(
        root=root,
        state_dir=state,
        moto_port=_port(env, "RAILPULSE_MOTO_PORT", 4566),
        moto_s3_port=_port(env, "RAILPULSE_MOTO_S3_PORT", 4567),
        mqtt_port=_port(env, "RAILPULSE_MQTT_PORT", 8883),
        pg_port=_port(env, "RAILPULSE_PG_PORT", 5433),
        iot_data_port=_port(env, "RAILPULSE_IOT_DATA_PORT", 4580),
        fleet=expand_fleet(env.get("RAILPULSE_FLEET") or DEFAULT_FLEET),
    )
