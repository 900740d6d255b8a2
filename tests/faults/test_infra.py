"""Infrastructure faults through the whole local stack, with the four services as processes.

One module-scoped fixture starts ingest, detector, notifier and archiver once (as `railpulse demo`
does; buffers flush every 5 s; the archiver loads the warehouse every 5 s and reaches S3 through a
fault-injecting proxy, `AWS_ENDPOINT_URL_S3`). The trains are real edge agents (spool, QoS 1,
backfill) publishing over MQTT with their own certificates; their names are fresh per run, so
every check is exact on a stack that has seen other runs. Each test states its pass criterion in
its docstring.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from infra_support import CHANNELS, LakeFrame, S3FaultProxy, SteadySource, Trains, kill_broker, lake_frames
from stackrun import SERVICES, Running, suite_services, wait_for

from railpulse_devstack import stack as devstack
from railpulse_devstack.config import StackConfig, load_config

pytestmark = pytest.mark.stack

RUN = uuid.uuid4().hex[:8]


def _names(kind: str, n: int) -> list[str]:
    return [f"fault-{kind}-{RUN}-{i}" for i in range(n)]


BROKER_TRAINS = _names("broker", 3)
DEVICES = [*BROKER_TRAINS]


@dataclass
class Infra:
    running: Running
    s3: S3FaultProxy
    config: StackConfig
    spool_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return self.running.env


@pytest.fixture(scope="module")
def infra(stack: dict[str, str]) -> Iterator[Infra]:
    proxy = S3FaultProxy(stack["AWS_ENDPOINT_URL"])
    overrides = {name: {"RAILPULSE_BUFFER_MAX_AGE_S": "5"} for name in SERVICES}
    overrides["archiver"] |= {"AWS_ENDPOINT_URL_S3": proxy.url, "RAILPULSE_WAREHOUSE_LOAD_EVERY_S": "5"}
    try:
        with suite_services(stack, "faults", RUN, DEVICES, overrides) as running:
            yield Infra(running, proxy, load_config(), running.run_dir / "spools")
    finally:
        proxy.close()


def _complete(env: dict[str, str], want: dict[str, set[int]]) -> dict[str, dict[int, LakeFrame]] | None:
    found = lake_frames(env, want)
    return found if all(set(found.get(t, {})) >= seqs for t, seqs in want.items()) else None


def _assert_exactly_once(found: dict[str, dict[int, LakeFrame]], want: dict[str, set[int]]) -> None:
    """Every generated frame, nothing else, each reading once, from one Kinesis record."""
    for train, seqs in want.items():
        frames = found[train]
        assert set(frames) == seqs, (train, sorted(set(frames) ^ seqs))
        bad = {s: f for s, f in frames.items() if (f.rows, f.channels, f.copies) != (CHANNELS, CHANNELS, 1)}
        assert not bad, (train, bad)


def _assert_lanes_in_order(frames: dict[int, LakeFrame]) -> None:
    """A train's frames reach `telemetry` on one shard, and each lane in sequence order: live
    frames as they were sampled, backfilled ones oldest first."""
    assert len({f.shard for f in frames.values()}) == 1
    for lane in (False, True):
        positions = [f.position for _, f in sorted(frames.items()) if f.backfill is lane]
        assert positions == sorted(positions), f"{'backfill' if lane else 'live'} lane out of order"


def test_broker_restart_while_trains_publish_loses_nothing(infra: Infra) -> None:
    """Pass: mosquitto is killed (SIGKILL) while three trains publish at 1 Hz and is started again
    by devstack's own `up` (same configuration and TLS). Every frame the trains generated before,
    during and after the outage is in the lake exactly once, each lane in sequence order; every
    train reconnected by itself and its spool drained to empty; frames sampled while the broker
    was down came back as backfill."""
    trains = Trains(infra.env, infra.spool_dir)
    try:
        agents = {n: trains.add(n, SteadySource(n), rate_hz=1.0) for n in BROKER_TRAINS}
        wait_for(lambda: all(a.link.connected.is_set() for a in agents.values()), 30,
                 "the trains to connect")
        wait_for(lambda: all(len(trains.generated(n)) >= 5 for n in agents), 30, "live frames")
        kill_broker(infra.config)
        down_from = {n: len(trains.generated(n)) for n in agents}
        wait_for(lambda: all(len(trains.generated(n)) >= down_from[n] + 4 for n in agents), 30,
                 "frames sampled while the broker is down")
        started = time.monotonic()
        devstack.up(infra.config)
        wait_for(lambda: all(a.link.connects >= 2 for a in agents.values()), 60,
                 "every train to reconnect")
        reconnected_s = time.monotonic() - started
        back = {n: len(trains.generated(n)) for n in agents}
        wait_for(lambda: all(len(trains.generated(n)) >= back[n] + 4 for n in agents), 30,
                 "live frames after the restart")
        trains.stop_sampling()
        trains.wait_drained(agents, 60)
        want = {n: trains.generated(n) for n in agents}
    finally:
        trains.close()
    found = wait_for(lambda: _complete(infra.env, want), 120, "every frame in the lake",
                     supervisor=infra.running.supervisor)
    _assert_exactly_once(found, want)
    for train in want:
        _assert_lanes_in_order(found[train])
        backfilled = {s for s, f in found[train].items() if f.backfill}
        assert backfilled, f"{train}: nothing was spooled during the outage"
    print(f"reconnected {reconnected_s:.1f} s after the broker restart; "
          f"frames per train {[len(s) for s in want.values()]}")
