"""S3 has a moto process of its own in the local stack (issue 18: one process under one GIL held
every Kinesis request behind a snapshot's upload or a listing of the lake), and every client of
the stack's S3 finds it through `AWS_ENDPOINT_URL_S3`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import load_config
from railpulse_devstack.env import s3_endpoint
from railpulse_devstack.pki import Pki
from railpulse_devstack.serve import container_config
from railpulse_shared.config import CommonSettings, load_settings


def test_the_process_stack_serves_s3_from_its_own_moto(tmp_path: Path) -> None:
    config = load_config({"RAILPULSE_STACK_DIR": str(tmp_path), "RAILPULSE_MOTO_S3_PORT": "4999"})
    assert [s.name for s in devstack.status(config)][:2] == ["moto", "s3"]
    env = devstack.base_env(config, Pki(tmp_path / "pki"))
    assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{config.moto_port}"
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4999"
    settings = load_settings(CommonSettings, env)
    assert settings.endpoint_for("s3") == "http://127.0.0.1:4999"
    assert settings.endpoint_for("kinesis") == env["AWS_ENDPOINT_URL"]
    assert s3_endpoint(env) == "http://127.0.0.1:4999"


def test_the_container_stack_keeps_one_moto_for_every_api(tmp_path: Path) -> None:
    config = dataclasses.replace(container_config(), state_dir=tmp_path)
    assert config.moto_s3_port == 0
    assert "s3" not in [s.name for s in devstack.status(config)]
    env = devstack.base_env(config, Pki(tmp_path / "pki"))
    assert "AWS_ENDPOINT_URL_S3" not in env
    assert s3_endpoint(env) == env["AWS_ENDPOINT_URL"]
    assert s3_endpoint({}) is None  # AWS itself
