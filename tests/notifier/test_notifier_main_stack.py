"""`railpulse-notifier` as a process: it consumes, and SIGTERM drains and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from ntkit import Resources, anomaly, poll_until

pytestmark = pytest.mark.stack


def test_console_script_runs_and_stops_on_sigterm(res: Resources) -> None:
    train = f"nt-main-{uuid.uuid4().hex[:8]}"
    env = os.environ | res.env | {
        "RAILPULSE_QUEUE_ALERTS_URL": res.queue_url, "RAILPULSE_ALARM_TABLE": res.table,
        "RAILPULSE_STREAM_EVENTS": res.stream, "RAILPULSE_WAIT_TIME_S": "1",
        "RAILPULSE_METRICS_FLUSH_S": "600",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "railpulse_notifier.main"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        res.send(anomaly(train))

        def notified() -> bool:
            try:
                return bool(res.shadow(train)["state"]["desired"]["alerts"]["open"])
            except Exception:
                return False

        assert poll_until(notified, 20), proc.stderr.read1().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert {"notifier.started", "shutdown_requested", "notifier.stopped"} <= {
        entry.get("event") for entry in logs}
    emf = [json.loads(line) for line in out.decode().splitlines() if '"_aws"' in line]
    assert any(doc.get("AlarmsRaised") for doc in emf), "metrics flushed on the way out"
