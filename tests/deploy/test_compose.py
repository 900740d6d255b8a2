"""compose.yaml (no Docker engine here): it names every piece of the local stack, publishes the
local stack's ports and gives the services the same settings the CDK stacks give them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from railpulse_deploy import names

ROOT = Path(__file__).resolve().parents[2]

# The process-based local stack's defaults (railpulse_devstack.config and .env on main), which
# compose mirrors: ports, the privileged identity, the default fleet and the env file's keys.
LOCAL_STACK_PORTS = {"moto": 4566, "mosquitto": 8883, "postgres": 5433, "iot": 4580}
PRIVILEGED_IDENTITY = "railpulse-iot-core"
DEFAULT_FLEET = "train-001..train-020,sensor-101..sensor-107"
LOCAL_ENV_KEYS = {
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RAILPULSE_IOT_DATA_ENDPOINT",
    "RAILPULSE_MQTT_HOST",
    "RAILPULSE_MQTT_PORT",
    "RAILPULSE_CA_FILE",
    "RAILPULSE_CERTS_DIR",
    "RAILPULSE_PG_DSN",
    "RAILPULSE_QUEUE_ALERTS_DLQ",
    "RAILPULSE_QUEUE_REJECTS_DLQ",
    "RAILPULSE_FLEET",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _published(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}


def test_names_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"moto", "mosquitto", "postgres", "iot", *names.SERVICES}
    for svc in names.SERVICES:
        assert services[svc]["command"] == [f"railpulse-{svc}"]


def test_ports_agree_with_the_local_stack(compose: dict[str, Any]) -> None:
    for svc, port in LOCAL_STACK_PORTS.items():
        assert port in _published(compose["services"][svc]), svc
    assert "4566" in " ".join(compose["services"]["moto"]["command"])
    assert compose["x-aws-local"]["AWS_ENDPOINT_URL"] == "http://moto:4566"


def test_moto_is_served_by_hypercorn(compose: dict[str, Any]) -> None:
    # railpulse_devstack.moto_server: moto's WSGI app under hypercorn (HTTP/1.1 + h2c).
    assert compose["services"]["moto"]["command"][:3] == [
        "python",
        "-m",
        "railpulse_devstack.moto_server",
    ]


def test_iot_stand_in_and_fleet_match_the_local_stack(compose: dict[str, Any]) -> None:
    iot = compose["services"]["iot"]
    assert iot["command"] == ["python", "-m", "railpulse_devstack.iot"]
    assert iot["environment"]["RAILPULSE_IOT_IDENTITY"] == PRIVILEGED_IDENTITY
    assert iot["environment"]["RAILPULSE_IOT_DATA_ENDPOINT"].endswith(":4580")
    env = compose["x-railpulse-env"]
    assert env["RAILPULSE_FLEET"] == DEFAULT_FLEET
    assert set(env) >= LOCAL_ENV_KEYS, LOCAL_ENV_KEYS - set(env)
    assert env["RAILPULSE_PG_DSN"].endswith("@postgres:5432/railpulse")
    certs = compose["services"]["certs"]
    assert PRIVILEGED_IDENTITY in certs["environment"]["DEVICES"]
    assert certs["environment"]["FLEET_RANGES"].split() == DEFAULT_FLEET.split(",")


def test_mosquitto_has_the_local_tls_setup(compose: dict[str, Any]) -> None:
    conf = compose["configs"]["mosquitto_conf"]["content"]
    for line in (
        "listener 8883",
        "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
    ):
        assert line in conf
    acl = compose["configs"]["mosquitto_acl"]["content"]
    assert "pattern readwrite trains/%u/#" in acl
    assert "pattern readwrite $$aws/things/%u/shadow/#" in acl  # $$ is compose's escaped $
    assert "topic readwrite $$aws/#" in acl
    assert f"user {PRIVILEGED_IDENTITY}" in acl


def test_services_get_the_same_settings_as_in_aws(compose: dict[str, Any]) -> None:
    env = compose["x-railpulse-env"]
    # The same contract the CDK stacks give the Fargate tasks; only the endpoints differ.
    expected = names.service_env("us-east-1", "http://iot:4580", "INFO")
    assert {k: env.get(k) for k in expected} == expected
    assert env["RAILPULSE_IOT_DATA_ENDPOINT"] == "http://iot:4580"
    for svc in names.SERVICES:
        assert compose["services"][svc]["environment"] == env


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    # Pulled images (services without a build) and the bases of the inline builds.
    pulled = [s["image"] for s in compose["services"].values() if "build" not in s]
    bases = re.findall(r"^\s*FROM\s+(\S+)", (ROOT / "compose.yaml").read_text(), re.M)
    assert pulled and bases
    for ref in pulled + bases:
        name, _, tag = ref.rpartition(":")
        assert name and tag != "latest" and re.search(r"\d", tag), ref
