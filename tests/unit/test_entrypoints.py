"""Every console script behaves: `--help` and `--version` print and exit 0 without starting
anything; started without its settings (or with a malformed one) it says which variable, in one
line, and exits 2. Run as subprocesses, the way a user, a container or the demo runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# script -> the distribution it belongs to
SERVICES = {
    "railpulse-ingest": "railpulse-ingest",
    "railpulse-detector": "railpulse-detector",
    "railpulse-notifier": "railpulse-notifier",
    "railpulse-archiver": "railpulse-archiver",
    "railpulse-console": "railpulse-console",
}
TOOLS = {
    "railpulse": "railpulse-cli",
    "railpulse-edge": "railpulse-edge",
    "railpulse-fleet": "railpulse-edge",
}
SCRIPTS = SERVICES | TOOLS


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a service that started instead of answering would be killed here
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _empty() -> dict[str, str]:
    return {"PATH": os.environ["PATH"]}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_prints_usage_and_exits(script: str) -> None:
    proc = _run([script, "--help"], _empty())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {script}")
    assert "--version" in proc.stdout


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_version_prints_the_package_version(script: str) -> None:
    proc = _run([script, "--version"], _empty())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{script} {version(SCRIPTS[script])}"


@pytest.mark.parametrize("script", sorted(SERVICES))
def test_a_service_without_its_settings_names_the_variable(script: str) -> None:
    proc = _run([script], _empty())
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith(f"{script}: AWS_REGION: is required but not set")
    assert proc.stdout == ""


@pytest.mark.parametrize("script", sorted(SERVICES))
def test_a_service_with_a_malformed_variable_names_it(script: str) -> None:
    env = _empty() | {"AWS_REGION": "eu-west-1", "RAILPULSE_CLOCK_SKEW_TOLERANCE_MS": "soon"}
    proc = _run([script], env)
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == (
        f"{script}: RAILPULSE_CLOCK_SKEW_TOLERANCE_MS: expected an integer, got 'soon'"
    )


def test_the_edge_agent_without_its_settings_names_the_variable() -> None:
    proc = _run(["railpulse-edge"], _empty())
    assert proc.returncode == 2
    assert _one_line(proc.stderr).startswith("railpulse-edge: RAILPULSE_THING: is required")


def test_the_archiver_refuses_a_stream_it_does_not_archive() -> None:
    proc = _run(
        ["railpulse-archiver", "--stream", "telemetry-raw"], _empty() | {"AWS_REGION": "eu-west-1"}
    )
    assert proc.returncode == 2
    assert "--stream telemetry-raw" in _one_line(proc.stderr)
