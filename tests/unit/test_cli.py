"""The `railpulse` command: discovery of sub-commands and the demo's smoke flow."""

from __future__ import annotations

import subprocess
import sys

from railpulse_cli.main import build_parser


def test_help_lists_the_commands() -> None:
    text = build_parser().format_help()
    assert "demo" in text


def test_demo_smoke_flow_runs_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "railpulse_cli.main", "demo", "--smoke"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "accepted.v1 round-tripped" in proc.stdout
    assert "cabin_humidity_1=invalid" in proc.stdout
