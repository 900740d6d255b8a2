"""The fleet simulator end to end: several trains, each its own identity, a tunnel on one of them,
ground truth written, and every frame of every train in `telemetry-raw`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from edgehelpers import TrainStream, agent_env, spooled_seqs
from waiting import wait_until

from railpulse_edge.spool import read_stats

pytestmark = pytest.mark.stack

SCENARIO = """
seed = 11
[[fault]]
train = "fleet-train-002"
kind = "link_outage"
at_s = 20
duration_s = 40
[[fault]]
train = "fleet-train-003"
kind = "bearing_degradation"
channel = "bearing_temp_4"
at_s = 10
rate = 3600
"""


def test_fleet_with_a_tunnel_delivers_every_frame_and_writes_ground_truth(
    stack: dict[str, str], ensure_train: Callable[[str], str], tmp_path: Path
) -> None:
    names = [ensure_train(f"fleet-train-{i:03d}") for i in (1, 2, 3)]
    streams = {n: TrainStream(stack, n) for n in names}
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    truth = tmp_path / "truth.jsonl"
    spools = tmp_path / "spools"
    # 10 Hz with time scale 10: one simulated second per frame, the 40 s tunnel lasts 4 s.
    proc = subprocess.run(
        [sys.executable, "-m", "railpulse_edge.fleet", "--trains", "3", "--prefix", "fleet-train-",
         "--rate-hz", "10", "--time-scale", "10", "--duration-s", "9", "--scenario", str(scenario),
         "--ground-truth", str(truth), "--spool-dir", str(spools)],
        env=agent_env(stack), capture_output=True, timeout=90, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    log = proc.stderr.decode()
    assert '"link.outage"' in log and "fleet-train-002" in log

    records = [json.loads(line) for line in truth.read_text().splitlines()]
    started = {(r["train"], r["fault"]) for r in records if "start_ms" in r}
    assert started == {("fleet-train-002", "link_outage"), ("fleet-train-003", "bearing_degradation")}
    assert any(r["fault"] == "link_outage" and "end_ms" in r for r in records)

    for name in names:
        stats = read_stats(spools / f"{name}.db")
        assert stats.next_seq >= 60
        # Whatever was not acknowledged before the fleet stopped is still spooled, never lost.
        wait_until(lambda n=name, s=stats: streams[n].poll() or
                   streams[n].seqs() | spooled_seqs(spools / f"{n}.db") >= set(range(s.next_seq)),
                   20, what=f"{name}'s frames")
    assert any(f.backfill for f in streams["fleet-train-002"].frames)  # it came out of the tunnel

