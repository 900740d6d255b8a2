"""deploy/docker/Dockerfile (built and run by test_containers.py): one target per service,
pinned base, non-root, the KCL jars checked against pinned checksums whichever package brings
them, and the JVM only in the KCL services' images."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import amazon_kclpy
import pytest

from railpulse_deploy import names

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
KCL_SERVICES = {"ingest", "detector", "archiver"}
CHECKSUMS = ROOT / "deploy" / "docker" / "kcl-2.5.8-jars.sha256"


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (the FROM first)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # join continuation lines
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        op, _, arg = line.partition(" ")
        if op.upper() == "FROM":
            current = arg.split(" AS ")[-1].strip() if " AS " in arg else arg
            stages[current] = []
        stages[current].append((op.upper(), arg.strip()))
    return stages


def _chain(stages: dict[str, list[tuple[str, str]]], name: str) -> list[str]:
    """`name` and the stages it is built FROM, down to the base image."""
    chain = [name]
    while (base := stages[chain[-1]][0][1].split(" AS ")[0]) in stages:
        chain.append(base)
    return chain


@pytest.mark.parametrize("service", [*names.SERVICES, "console"])
def test_one_target_per_service_pinned_non_root(service: str) -> None:
    stages = _stages()
    ins = stages[service]
    assert ("USER", "10001:10001") in ins
    assert ("ENTRYPOINT", f'["railpulse-{service}"]') in ins
    assert ("COPY", f"--from=env-{service} /app/.venv /app/.venv") in ins
    env = " ".join(a for op, a in stages[f"env-{service}"] if op == "RUN")
    assert f"--package railpulse-{service}" in env and "--frozen" in env
    default = dict(re.findall(r"^(\w+_IMAGE)=(\S+)$", "\n".join(a for op, a in stages[""]), re.M))
    name, _, tag = default["OS_IMAGE"].rpartition(":")
    assert name == "debian" and re.match(r"\d+\.\d+", tag), default  # pinned, bookworm
    assert not any(op == "ADD" for st in stages.values() for op, _ in st)


def test_the_jars_are_checked_whichever_package_brings_them() -> None:
    deps = " ".join(a for op, a in _stages()["deps"] if op == "RUN")
    assert '"amazon-kclpy==2.1.5"' in deps  # official: downloads the jars from Maven Central
    assert "sha256sum --strict --check" in deps and "/tmp/kcl-jars.sha256" in deps
    assert "wc -l < /tmp/kcl-jars.sha256" in deps  # and nothing else is there


@pytest.mark.parametrize("service", [*names.SERVICES, "console"])
def test_only_kcl_services_carry_a_jvm(service: str) -> None:
    chain = _chain(_stages(), service)
    assert ("os-jre" in chain) == (service in KCL_SERVICES), chain


def test_checksums_cover_the_kcl_2_5_8_jars_the_local_wheel_ships() -> None:
    pinned = dict(reversed(line.split()) for line in CHECKSUMS.read_text().splitlines())
    assert {"amazon-kinesis-client-2.5.8.jar", "amazon-kinesis-client-multilang-2.5.8.jar"} <= set(
        pinned
    )
    jars = Path(amazon_kclpy.__file__).parent / "jars"
    local = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in jars.glob("*.jar")}
    assert local == pinned


def test_dockerignore_sends_only_sources_and_locks() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    for keep in ("!uv.lock", "!shared/", "!services/", "!deploy/docker/"):
        assert keep in lines
