"""Configuration from the environment into one frozen, typed Settings object per service.

A field `foo_bar` reads `RAILPULSE_FOO_BAR`; a field `aws_foo` reads the standard `AWS_FOO`
(so `aws_endpoint_url` is botocore's own `AWS_ENDPOINT_URL`). Values are converted leniently
(`"5"` → 5, `"true"` → True) and every error names the variable. `load_settings` is called once,
in a service's `main`, and the result is passed down: nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal, TypeVar, get_args, get_origin

import msgspec

from railpulse_shared.errors import ConfigError

__all__ = ["CommonSettings", "env_name", "load_settings"]

_S = TypeVar("_S", bound=msgspec.Struct)


class CommonSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every service needs: where AWS is, resource names, logging and metrics."""

    service: str = "railpulse"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    """A local endpoint (the moto stack); unset in AWS."""
    aws_endpoint_url_s3: str | None = None
    """S3's own endpoint (botocore's `AWS_ENDPOINT_URL_S3`): wins over `aws_endpoint_url` for S3,
    e.g. an S3-compatible store, or the fault-injecting proxy of the fault tests."""
    log_level: str = "info"
    metrics_namespace: str = "railpulse"
    metrics_sink: str = "stdout"
    """`stdout`, `stderr`, `file:///path`, or `tcp://host:port` / `udp://host:port` (the
    CloudWatch agent)."""
    stream_raw: str = "telemetry-raw"
    stream_telemetry: str = "telemetry"
    stream_events: str = "events"
    queue_alerts: str = "alerts"
    queue_rejects: str = "rejects"
    queue_rejects_dlq: str = "rejects-dlq"
    """Where a reject goes after `maxReceiveCount` receives of `rejects` (reading counts)."""
    bucket_lake: str = "railpulse-lake"
    bucket_state: str = "railpulse-state"
    alarm_table: str = "railpulse-alarms"
    glue_database: str = "railpulse"
    iot_data_endpoint: str | None = None
    catalogue: str | None = None
    """Path of a channel catalogue replacing the built-in one."""
    clock_skew_tolerance_ms: int = 30_000
    """How far a live reading's sensor time may be from its IoT receipt time before its device's
    clock counts as skewed: ingest then counts and logs it, the notifier measures latency from
    the receipt time instead."""

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint of one AWS service (None: botocore's regional default)."""
        if service == "iot-data" and self.iot_data_endpoint:
            return self.iot_data_endpoint
        if service == "s3" and self.aws_endpoint_url_s3:
            return self.aws_endpoint_url_s3
        return self.aws_endpoint_url


def env_name(field: str) -> str:
    """The environment variable a settings field reads."""
    return field.upper() if field.startswith("aws_") else f"RAILPULSE_{field.upper()}"


def load_settings(cls: type[_S], env: Mapping[str, str] | None = None, **overrides: object) -> _S:
    """Build `cls` from the environment (or `env`); `overrides` win over both."""
    source = os.environ if env is None else env
    fields = msgspec.structs.fields(cls)
    raw: dict[str, object] = {}
    for f in fields:
        value = source.get(env_name(f.name))
        if value is not None and value != "":
            raw[f.name] = value
    raw.update(overrides)
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        missing = re.search(r"missing required field `(\w+)`", message)
        if missing:
            raise ConfigError(env_name(missing.group(1)), "is required but not set") from exc
        at = re.search(r"at `\$\.(\w+)`", message)
        if at:
            field = next(f for f in fields if f.name == at.group(1))
            problem = _problem(field.type, message.split(" - at ")[0], raw.get(field.name))
            raise ConfigError(env_name(field.name), problem) from exc
        raise ConfigError(cls.__name__, message) from exc


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


def _problem(annotation: object, message: str, shown: object) -> str:
    """msgspec's complaint about one value, in the words of someone setting a variable."""
    allowed = [a for a in get_args(annotation) if isinstance(a, str)]
    if get_origin(annotation) is Literal and allowed:
        return f"{shown!r} is not one of {', '.join(map(repr, allowed))}"
    expected = re.match(r"Expected `(\w+)(?: \| null)?`", message)
    if expected and expected.group(1) in _KINDS:
        return f"expected {_KINDS[expected.group(1)]}, got {shown!r}"
    return f"{message} (got {shown!r})"
