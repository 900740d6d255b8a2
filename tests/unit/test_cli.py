"""The `railpulse` command: discovery of sub-commands and the demo's smoke flow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_the_supervisor_tells_a_process_it_stopped_from_one_that_failed(tmp_path: Path) -> None:
    import signal

    from railpulse_cli.demo.supervisor import Supervisor

    with Supervisor(tmp_path) as supervisor:
        killed = supervisor.start("killed", ["sleep", "60"], {})
        failing = supervisor.start("failing", [sys.executable, "-c", "raise SystemExit(3)"], {})
        supervisor.stop(killed, signal.SIGKILL)
        assert killed.popen is not None and failing.popen is not None
        killed.popen.wait(10)
        failing.popen.wait(10)
        assert killed.returncode == -signal.SIGKILL
        assert supervisor.failed() == [failing]
