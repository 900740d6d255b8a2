"""The stack's env file, `<state>/env`: everything a service or test needs to reach the stack.

Keys (values for the default ports):
  AWS_ENDPOINT_URL=http://127.0.0.1:4566     AWS_REGION=AWS_DEFAULT_REGION=us-east-1
  AWS_ENDPOINT_URL_S3=http://127.0.0.1:4567  (S3's own moto; botocore's service-specific endpoint)
  AWS_ACCESS_KEY_ID=testing                  AWS_SECRET_ACCESS_KEY=<generated at first start>
  RAILPULSE_IOT_DATA_ENDPOINT=http://127.0.0.1:4580   (boto3 `iot-data` endpoint_url)
  RAILPULSE_MQTT_HOST=127.0.0.1  RAILPULSE_MQTT_PORT=8883
  RAILPULSE_CA_FILE=<state>/pki/ca.crt
  RAILPULSE_CERTS_DIR=<state>/pki/devices    (<thing>.crt and <thing>.key)
  RAILPULSE_PG_DSN=postgresql://railpulse:<generated password>@127.0.0.1:5433/railpulse
  RAILPULSE_STREAM_RAW / _TELEMETRY / _EVENTS, RAILPULSE_QUEUE_ALERTS / _ALERTS_DLQ / _REJECTS /
  _REJECTS_DLQ (+ `_URL` variants), RAILPULSE_BUCKET_LAKE / _STATE, RAILPULSE_GLUE_DATABASE,
  RAILPULSE_ALARM_TABLE, RAILPULSE_STACK_DIR, RAILPULSE_STACK_LOGS, RAILPULSE_FLEET.

It holds secrets (the AWS secret key the IoT stand-in checks signatures with, the warehouse
password), so only its owner may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from railpulse_devstack._secrets import write_private
from railpulse_devstack.config import StackConfig, load_config
from railpulse_devstack.errors import StackNotRunningError

__all__ = ["read_env_file", "s3_endpoint", "stack_env", "write_env_file"]


def s3_endpoint(env: Mapping[str, str]) -> str | None:
    """Where S3 answers in an environment: its own endpoint if it has one (the local stack's),
    else the one for every AWS API (None: AWS itself)."""
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    write_private(path, "".join(f"{k}={v}\n" for k, v in sorted(values.items())))


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def stack_env(config: StackConfig | None = None) -> dict[str, str]:
    """The running stack's env (KEY -> VALUE); raises StackNotRunningError before `stack up`."""
    config = config or load_config()
    try:
        return read_env_file(config.env_file)
    except FileNotFoundError:
        raise StackNotRunningError(
            f"{config.env_file} is missing: start the stack with `railpulse stack up`"
        ) from None
