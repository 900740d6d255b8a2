"""Judging the infrastructure fault tests by where the data ended up: per frame, what the lake
holds (rows, distinct channels, lane, Kinesis position); the warehouse against the lake; Glue's
partitions; a device's dead letters; the services' EMF; the alarms' lifetimes; and what the
detector's forest would make of frames fed to it live (the control of the backfill test).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from infra_support import CHANNELS
from stackrun import Running, client, lake_rows, wait_for
from waiting import written_lines

__all__ = [
    "LAKE_POLL_S",
    "LakeFrame",
    "alarm_lifetimes_s",
    "assert_exactly_once",
    "assert_lanes_in_order",
    "assert_warehouse_equals_lake",
    "complete",
    "emf_docs",
    "emf_values",
    "lake_frames",
    "missing_glue_partitions",
    "rejected_frames",
    "score_over_threshold_as_live",
    "warehouse_readings",
]

LAKE_POLL_S = 2.0
"""How often to ask the lake: a query reads every object's footer (~2 s on a loaded 2-core
machine), so asking more often only slows down the services being waited for."""


@dataclass(frozen=True)
class LakeFrame:
    """What the lake holds of one frame."""

    rows: int
    channels: int
    """Distinct channels among `rows`: equal to it when no reading is there twice."""
    copies: int
    """Distinct Kinesis records the rows came from (1 unless a duplicate got through)."""
    backfill: bool
    ts_ms: int
    received_ms: int
    ingested_ms: int
    shard: str
    position: int
    """The frame's Kinesis sequence number on `telemetry` (its order on its shard)."""


def lake_frames(env: dict[str, str], trains: Iterable[str]) -> dict[str, dict[int, LakeFrame]]:
    """train -> seq -> what the lake holds of that frame."""
    rows = lake_rows(
        env,
        "SELECT train, seq, count(*), count(DISTINCT channel), "
        "count(DISTINCT (source_shard, source_seq)), bool_or(backfill), min(epoch_ms(ts)), "
        "min(received_ms), min(ingested_ms), min(source_shard), min(CAST(source_seq AS HUGEINT)) "
        "FROM telemetry WHERE train IN (SELECT unnest(?)) GROUP BY train, seq",
        [list(trains)])
    out: dict[str, dict[int, LakeFrame]] = {}
    for train, seq, *rest in rows:
        n, channels, copies, backfill, ts, received, ingested, shard, position = rest
        out.setdefault(train, {})[seq] = LakeFrame(
            n, channels, copies, bool(backfill), ts, received, ingested, shard, int(position))
    return out


def complete(env: dict[str, str], want: dict[str, set[int]]) -> dict[str, dict[int, LakeFrame]] | None:
    found = lake_frames(env, want)
    return found if all(set(found.get(t, {})) >= seqs for t, seqs in want.items()) else None


def assert_exactly_once(found: dict[str, dict[int, LakeFrame]], want: dict[str, set[int]]) -> None:
    """Every generated frame, nothing else, each reading once, from one Kinesis record."""
    for train, seqs in want.items():
        frames = found[train]
        assert set(frames) == seqs, (train, sorted(set(frames) ^ seqs))
        bad = {s: f for s, f in frames.items() if (f.rows, f.channels, f.copies) != (CHANNELS, CHANNELS, 1)}
        assert not bad, (train, bad)


def assert_lanes_in_order(frames: dict[int, LakeFrame]) -> None:
    """A train's frames reach `telemetry` on one shard, and each lane in sequence order: live
    frames as they were sampled, backfilled ones oldest first."""
    assert len({f.shard for f in frames.values()}) == 1
    for lane in (False, True):
        positions = [f.position for _, f in sorted(frames.items()) if f.backfill is lane]
        assert positions == sorted(positions), f"{'backfill' if lane else 'live'} lane out of order"


def missing_glue_partitions(
    env: dict[str, str], frames: dict[str, dict[int, LakeFrame]]
) -> set[tuple[str, str]]:
    """The (dt, hour) partitions of the frames' sensor times that Glue does not have."""
    glue = client(env, "glue")
    wanted = {time.strftime("%Y-%m-%d/%H", time.gmtime(f.ts_ms / 1000))
              for by_seq in frames.values() for f in by_seq.values()}
    missing = set()
    for dt, hour in (w.split("/") for w in wanted):
        try:
            glue.get_partition(DatabaseName=env["RAILPULSE_GLUE_DATABASE"], TableName="telemetry",
                               PartitionValues=[dt, hour])
        except glue.exceptions.EntityNotFoundException:
            missing.add((dt, hour))
    return missing


def warehouse_readings(env: dict[str, str], trains: list[str]) -> dict[tuple[str, int, str], int]:
    """(train, seq, channel) -> how many rows the warehouse holds of that reading."""
    import psycopg

    with psycopg.connect(env["RAILPULSE_PG_DSN"], autocommit=True) as conn:
        rows = conn.execute("SELECT train, seq, channel, count(*) FROM telemetry "
                            "WHERE train = ANY(%s) GROUP BY 1, 2, 3", [trains]).fetchall()
    return {(t, s, c): n for t, s, c, n in rows}


def assert_warehouse_equals_lake(running: Running, want: dict[str, set[int]]) -> None:
    """Once the archiver's periodic loads have caught up: the trains' readings in the warehouse
    are the lake's, each exactly once (the ledger loads an object once, whatever failed)."""
    env, trains = running.env, list(want)
    readings = set(lake_rows(env, "SELECT train, seq, channel FROM telemetry "
                                  "WHERE train IN (SELECT unnest(?))", [trains]))
    assert len(readings) == sum(len(seqs) for seqs in want.values()) * CHANNELS

    def loaded() -> dict[tuple[str, int, str], int] | None:
        in_warehouse = warehouse_readings(env, trains)
        return in_warehouse if set(in_warehouse) >= readings else None

    got = wait_for(loaded, 120, "every reading in the warehouse", supervisor=running.supervisor,
                   every=LAKE_POLL_S)
    assert set(got) == readings
    assert set(got.values()) == {1}, "a reading loaded twice"


def rejected_frames(env: dict[str, str], device: str, want: set[int]) -> dict[int, str]:
    """seq -> reject reason of the device's frames on the rejects queue (taken off it), once all
    of `want` are there."""
    from railpulse_shared.codec import decode_device_message, decode_event
    from railpulse_shared.contracts import FrameBatch, RejectedRecord

    sqs, url = client(env, "sqs"), env["RAILPULSE_QUEUE_REJECTS_URL"]
    found: dict[int, str] = {}

    def take() -> dict[int, str] | None:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       VisibilityTimeout=5).get("Messages", [])
        for message in messages:
            record = decode_event(message["Body"].encode())
            assert isinstance(record, RejectedRecord)
            if record.device != device:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
                continue
            body = decode_device_message(record.raw)
            for f in body.frames if isinstance(body, FrameBatch) else [body]:
                found[f.seq] = record.reason.value
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found if set(found) >= want else None

    return wait_for(take, 90, f"{device}'s frames on the rejects queue", every=1.0)


def emf_docs(running: Running, service: str, since_ms: int) -> list[dict[str, Any]]:
    """A service's EMF documents written since `since_ms`."""
    path = running.run_dir / "metrics" / f"{service}.emf"
    docs = [json.loads(line) for line in written_lines(path)]
    return [d for d in docs if d["_aws"]["Timestamp"] >= since_ms]


def emf_values(doc: dict[str, Any], name: str) -> list[float]:
    value = doc.get(name, [])
    return value if isinstance(value, list) else [value]


def alarm_lifetimes_s(env: dict[str, str], trains: list[str]) -> dict[str, float] | None:
    """train -> seconds from its alarm's raise to its clear (wall time, the notifier's), once
    every train's alarm has both in the lake."""
    rows = lake_rows(env, "SELECT train, epoch_ms(max(changed_at) FILTER (state = 'cleared')) - "
                          "epoch_ms(min(changed_at) FILTER (state = 'raised')) FROM alarms "
                          "WHERE train IN (SELECT unnest(?)) GROUP BY train", [trains])
    lifetimes = {t: ms / 1000 for t, ms in rows if ms is not None}
    return lifetimes if set(lifetimes) == set(trains) else None


def score_over_threshold_as_live(env: dict[str, str], train: str, entered: int, n: int = 20) -> float:
    """The highest score / threshold of the first `n` tunnel frames when fed live to the train's
    forest after the live frames before the tunnel: the detector's own model and settings, in
    process. (Scores, not alerts: an earlier false alarm on noise would hold a new alert back for
    its refractory period. Noise scores near or below 1.)"""
    import numpy as np

    from railpulse_detector.model import ModelBank, ModelSettings
    from railpulse_detector.settings import DetectorSettings
    from railpulse_shared.catalogue import load_catalogue
    from railpulse_shared.contracts import AcceptedFrame, DeviceKind, Reading

    rows = lake_rows(env, "SELECT seq, epoch_ms(any_value(ts)), map(list(channel), list(value)) "
                          "FROM telemetry WHERE train = ? AND seq < ? GROUP BY seq ORDER BY seq",
                     [train, entered + n])
    frames = [AcceptedFrame(train=train, seq=seq, ts_ms=ts, speed_kmh=80.0,
                            readings={c: Reading(v) for c, v in readings.items()})
              for seq, ts, readings in rows]
    settings = DetectorSettings()
    bank = ModelBank(load_catalogue(None), ModelSettings(
        num_trees=settings.model_trees, warmup=settings.model_warmup,
        refractory=settings.model_warmup, reassert_ms=settings.reassert_ms))
    bank.score([f for f in frames if f.seq < entered])
    kind = bank.kinds[DeviceKind.TRAIN]
    assert kind.fleet is not None
    tunnel = [kind.features.extract(f, kind.carry[train])[0] for f in frames if f.seq >= entered]
    batch = kind.fleet.process([kind.index[train]], np.array(tunnel)[None], explain=False)
    return float((batch.score[0] / batch.threshold[0]).max())
