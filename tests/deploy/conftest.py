"""Synthesise the CDK app once per session; every deploy test reads that one assembly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from deploy_synth import Synth

# Node 20 is past end of life for jsii; the warning is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from aws_cdk import App

    from railpulse_deploy.app import build_app

    # nag=False: the nag test runs the pack itself, to report every finding at once.
    app = build_app(App(outdir=str(tmp_path_factory.mktemp("cdk.out"))), nag=False)
    assembly = app.synth()
    return Synth(app, {s.stack_name: s.template for s in assembly.stacks})


@pytest.fixture(scope="session")
def images() -> None:
    """Every image built, once per session: scripts/images.sh installs and starts Docker if it
    must and rebuilds only what changed (seconds when nothing did; `make test` ran it before)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "images.sh"
    subprocess.run(["bash", str(script)], check=True, timeout=1800)
