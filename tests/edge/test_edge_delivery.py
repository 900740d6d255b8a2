"""The agent against the running stack: nothing generated is ever lost.

Time is compressed: the agent samples at 20 Hz, so 20 s offline stands for ~7 minutes at 1 Hz.
What arrives is read from Kinesis `telemetry-raw`, where the IoT rule stand-in puts what the
broker received.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from edgehelpers import (
    AgentProcess,
    TrainStream,
    agent_env,
    iot_data_client,
    reported,
    spooled_seqs,
)
from tunnel import TcpProxy
from waiting import wait_until

from railpulse_edge.spool import read_stats

pytestmark = pytest.mark.stack

FAST = ["--rate-hz", "20", "--reconnect-base-s", "0.2", "--reconnect-cap-s", "1",
        "--backfill-rate", "20", "--publish-timeout-s", "5"]


def test_kill9_mid_publish_then_restart_loses_nothing(
    stack: dict[str, str], ensure_train: Callable[[str], str], agents: Callable[..., AgentProcess]
) -> None:
    thing = ensure_train("train-901")
    stream = TrainStream(stack, thing)
    agent = agents(thing, agent_env(stack), *FAST)
    agent.start()
    wait_until(lambda: stream.poll() or len(stream.frames) >= 40, 30, what="live frames")

    agent.kill9()  # mid-publish: at 20 Hz a frame is in flight most of the time
    generated = read_stats(agent.spool_path).next_seq
    unacked = spooled_seqs(agent.spool_path)  # published or not, no PUBACK reached the agent
    assert generated >= 40
    received_before = len(stream.frames)

    agent.start()
    wait_until(lambda: "link.connected" in agent.log(2), 30, what="the restarted agent online")
    wait_until(lambda: stream.has_all_below(generated), 60, what=f"all {generated} frames")
    assert agent.terminate() == 0

    seqs = [f.seq for f in stream.frames]
    assert set(range(generated)) <= set(seqs)
    # What was unacknowledged at the kill was sent again after the restart, as backfill.
    resent = {f.seq for f in stream.frames[received_before:] if f.backfill}
    assert unacked <= resent
    # At least once: a duplicate is the same frame again (same seq), never a new numbering.
    assert max(seqs) < read_stats(agent.spool_path).next_seq
    after = read_stats(agent.spool_path)
    assert after.next_seq > generated  # the sequence continued across the restart
    # ... under the same counter epoch, the spool's, live and resent alike.
    assert after.epoch != 0 and {f.epoch for f in stream.frames} == {after.epoch}


def test_outage_ends_in_complete_ordered_backfill_while_live_continues(
    stack: dict[str, str], ensure_train: Callable[[str], str],
    agents: Callable[..., AgentProcess], tunnel: TcpProxy,
) -> None:
    thing = ensure_train("train-902")
    stream = TrainStream(stack, thing)
    agent = agents(thing, agent_env(stack, RAILPULSE_MQTT_PORT=str(tunnel.port)), *FAST,
                   "--backfill-rate", "4")
    agent.start()
    wait_until(lambda: stream.poll() or len(stream.frames) >= 20, 30, what="live frames")

    tunnel.cut()
    wait_until(lambda: read_stats(agent.spool_path).pending >= 400, 40, what="400 spooled frames")
    tunnel.restore()
    generated_offline = read_stats(agent.spool_path).next_seq

    wait_until(lambda: stream.has_all_below(generated_offline), 90, what="complete backfill")
    assert agent.terminate() == 0

    backfilled = [f.seq for f in stream.frames if f.backfill]
    assert len(backfilled) >= 380
    assert backfilled == sorted(backfilled), "backfill must arrive oldest first"
    assert all(f.batch for f in stream.frames if f.backfill)
    # Batches carry several frames and stay within the size limit.
    batches = [m for m in stream.messages if b'"frames.v1"' in m]
    assert len(batches) < len(backfilled) / 3
    assert max(len(m) for m in batches) <= 4 * 5120
    assert max(len(m) for m in stream.messages if b'"frame.v1"' in m[:20]) <= 5120
    # Live frames kept flowing while the backlog drained: some live frame newer than the outage
    # arrived before the last backfilled frame did.
    order = {id(f): i for i, f in enumerate(stream.frames)}
    last_backfill = max(order[id(f)] for f in stream.frames if f.backfill)
    assert any(
        not f.backfill and f.seq >= generated_offline and order[id(f)] < last_backfill
        for f in stream.frames
    )


def test_spool_overflow_reports_exactly_what_it_evicted(
    stack: dict[str, str], ensure_train: Callable[[str], str],
    agents: Callable[..., AgentProcess], tunnel: TcpProxy,
) -> None:
    thing = ensure_train("train-903")
    stream = TrainStream(stack, thing)
    agent = agents(thing, agent_env(stack, RAILPULSE_MQTT_PORT=str(tunnel.port)), *FAST,
                   "--spool-max-frames", "60")
    agent.start()
    wait_until(lambda: stream.poll() or len(stream.frames) >= 10, 30, what="live frames")
    tunnel.cut()
    wait_until(lambda: read_stats(agent.spool_path).evicted_size >= 100, 40, what="evictions")
    tunnel.restore()
    wait_until(lambda: read_stats(agent.spool_path).pending <= 2, 40, what="spool drained")
    stream.poll()
    evicted = read_stats(agent.spool_path).evicted_size
    # The count reaches the cloud through the shadow's reported state while the train runs.
    iot_data = iot_data_client(stack)
    wait_until(lambda: reported(iot_data, thing).get("spool", {}).get("evicted") == evicted,
               20, what="evictions reported in the shadow")
    assert agent.terminate() == 0

    stats = read_stats(agent.spool_path)
    stream.poll()
    missing = set(range(stats.next_seq)) - stream.seqs()
    assert stats.evicted_size == len(missing) > 0
    # The log says so too: the first eviction at once, and the totals when reported and at exit.
    lines = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    assert any(e["event"] == "spool.evicted" for e in lines)
    assert [e["evicted"] for e in lines if e["event"] == "agent.stopped"] == [len(missing)]
    assert evicted == len(missing)
    gap = reported(iot_data, thing)["spool"]["last_gap"]
    assert gap == {"count": len(missing), "first_seq": min(missing), "last_seq": max(missing),
                   "reason": "size"}


def test_sigterm_while_offline_exits_cleanly_with_the_spool_intact(
    stack: dict[str, str], ensure_train: Callable[[str], str],
    agents: Callable[..., AgentProcess], tunnel: TcpProxy,
) -> None:
    thing = ensure_train("train-905")
    tunnel.cut()  # in a tunnel from the start: nothing can leave
    agent = agents(thing, agent_env(stack, RAILPULSE_MQTT_PORT=str(tunnel.port)), *FAST)
    agent.start()
    wait_until(lambda: agent.spool_path.exists() and read_stats(agent.spool_path).next_seq >= 30, 30,
               what="30 spooled frames")
    assert agent.terminate() == 0
    stats = read_stats(agent.spool_path)
    assert stats.pending == stats.next_seq >= 30  # every frame kept, none sent
    assert not agent.spool_path.with_name(agent.spool_path.name + "-wal").stat().st_size  # checkpointed
    assert '"agent.stopped"' in agent.log(1)

    # Back in coverage, the restarted agent delivers all of them, oldest first.
    tunnel.restore()
    stream = TrainStream(stack, thing)
    agent.start()
    wait_until(lambda: stream.has_all_below(stats.next_seq), 30, what="the spooled frames")
    assert agent.terminate() == 0
    first = [f.seq for f in stream.frames if f.seq < stats.next_seq]
    assert first[: stats.next_seq] == list(range(stats.next_seq))


def test_basic_ingest_topic_reaches_the_same_rule(
    stack: dict[str, str], ensure_train: Callable[[str], str], agents: Callable[..., AgentProcess]
) -> None:
    thing = ensure_train("train-906")
    stream = TrainStream(stack, thing)
    agent = agents(thing, agent_env(stack), "--rate-hz", "10",
                   "--basic-ingest-rule", "railpulse_telemetry", "--no-shadow")
    agent.start()
    wait_until(lambda: stream.has_all_below(10), 30, what="frames via Basic Ingest")
    assert agent.terminate() == 0
    assert "$aws/rules/railpulse_telemetry/trains/train-906/telemetry" in agent.log(1)

