"""compose.yaml, read: it names every piece of the local stack, publishes the local stack's ports
(on the host's loopback), gives the services the same settings the CDK stacks give them, and
runs only images built here. test_compose_up.py brings it up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from railpulse_deploy import names
from railpulse_devstack.config import load_config

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


_PUBLISHED = re.compile(r"^127\.0\.0\.1:\$\{(?P<var>RAILPULSE_\w+_PORT):-(?P<port>\d+)\}:\d+$")


def _published(service: dict[str, Any]) -> dict[int, str]:
    """Host port (its default) -> the variable that moves it; loopback only."""
    found = {}
    for spec in service.get("ports", []):
        match = _PUBLISHED.match(str(spec))
        assert match, f"{spec}: publish on 127.0.0.1 with a RAILPULSE_*_PORT default"
        found[int(match["port"])] = match["var"]
    return found


def test_names_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"moto", "mosquitto", "postgres", "iot", *names.SERVICES}
    for svc in names.SERVICES:
        # The image's own entry point, as its task definition runs it (no extra arguments).
        assert services[svc]["entrypoint"] == [f"railpulse-{svc}"]
        assert "command" not in services[svc]


def test_ports_agree_with_the_local_stack(compose: dict[str, Any]) -> None:
    for svc, port in LOCAL_STACK_PORTS.items():
        published = _published(compose["services"][svc])
        assert port in published, svc
        # The same variable moves the port as in the process stack.
        assert published[port] in {p.env_var for p in load_config({}).ports()}, published
    assert compose["x-aws-local"]["AWS_ENDPOINT_URL"] == "http://moto:4566"


def test_the_stack_pieces_are_railpulse_devstacks_own(compose: dict[str, Any]) -> None:
    # Each piece runs `python -m railpulse_devstack.serve <piece>` (the image's entry point): the
    # process stack's code (moto under hypercorn, the broker's config, ACL and identity plugin,
    # the PKI, PostgreSQL's roles), one piece per container.
    image = compose["x-piece"]["image"]
    for svc, piece in {"moto": "moto", "init": "init", "mosquitto": "broker",
                       "postgres": "postgres", "iot": "iot"}.items():  # fmt: skip
        assert compose["services"][svc]["command"] == [piece]
        assert compose["services"][svc]["image"] == image


def test_iot_stand_in_and_fleet_match_the_local_stack(compose: dict[str, Any]) -> None:
    iot = compose["services"]["iot"]
    assert iot["environment"]["RAILPULSE_IOT_IDENTITY"] == PRIVILEGED_IDENTITY
    assert iot["environment"]["RAILPULSE_IOT_DATA_ENDPOINT"].endswith(":4580")
    env = compose["x-railpulse-env"]
    assert env["RAILPULSE_FLEET"] == DEFAULT_FLEET
    assert set(env) >= LOCAL_ENV_KEYS, LOCAL_ENV_KEYS - set(env)
    assert env["RAILPULSE_PG_DSN"].endswith("@postgres:5432/railpulse")


def test_postgres_is_the_service_role_with_a_password(compose: dict[str, Any]) -> None:
    # As in the process stack: the services connect as `railpulse` (no superuser) with a
    # generated password, never trust auth.
    dsn = compose["x-railpulse-env"]["RAILPULSE_PG_DSN"]
    assert dsn.startswith("postgresql://railpulse:${RAILPULSE_PG_PASSWORD:?"), dsn
    # The server sets the role's password from the same variable.
    password = compose["services"]["postgres"]["environment"]["RAILPULSE_PG_PASSWORD"]
    assert dsn == f"postgresql://railpulse:{password}@postgres:5432/railpulse"
    assert "trust" not in (ROOT / "compose.yaml").read_text().lower()


def test_services_get_the_same_settings_as_in_aws(compose: dict[str, Any]) -> None:
    env = compose["x-railpulse-env"]
    # The same contract the CDK stacks give the Fargate tasks; only the endpoints differ.
    expected = names.service_env("us-east-1", "http://iot:4580", "INFO")
    assert {k: env.get(k) for k in expected} == expected
    assert env["RAILPULSE_IOT_DATA_ENDPOINT"] == "http://iot:4580"
    for svc in names.SERVICES:
        assert compose["services"][svc]["environment"] == env


def test_every_image_is_built_here(compose: dict[str, Any]) -> None:
    # No image registry is reachable: every image is a target of deploy/docker/Dockerfile, built
    # by scripts/images.sh as railpulse-<target>:<tag>; nothing is pulled or built inline.
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)$",
                             (ROOT / "deploy/docker/Dockerfile").read_text(), re.M))  # fmt: skip
    built = re.search(r"^ALL_TARGETS=\((.*)\)$", (ROOT / "scripts/images.sh").read_text(), re.M)
    assert built
    for name, service in compose["services"].items():
        assert "build" not in service, name
        image = re.fullmatch(r"railpulse-(\S+):\$\{RAILPULSE_IMAGE_TAG:-local\}", service["image"])
        assert image and image[1] in targets and image[1] in built[1].split(), (name, service)
