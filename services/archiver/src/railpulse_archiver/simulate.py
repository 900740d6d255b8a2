"""A simulated fleet's accepted frames, as ingest puts them on Kinesis `telemetry` (tests, bench).

Deterministic (seeded), fast enough to make a week of 50 trains in seconds: per-channel random
walks around a nominal value, rounded to the sensors' resolution (0.1 of the unit), with a rare
invalid reading. Sequence numbers look like Kinesis's (56 decimal digits, increasing per shard).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import msgspec
import numpy as np

from railpulse_shared.batch import StreamRecord
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import Quality

__all__ = ["fleet_records", "shard_of", "train_channels"]

_SEQ_BASE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def train_channels() -> list[str]:
    """The channels a train carries: every catalogued channel outside the generic-sensor groups."""
    catalogue = load_catalogue()
    return [c.name for c in catalogue.channels.values() if c.group not in ("environment", "device")]


def shard_of(train: str, shards: int) -> str:
    return f"shardId-{zlib.crc32(train.encode()) % shards:012d}"


def fleet_records(
    *,
    trains: int,
    start_ms: int,
    duration_s: int,
    period_s: float,
    shards: int,
    stream: str = "telemetry",
    seed: int = 7,
) -> Iterator[StreamRecord]:
    """Records in arrival order, across the fleet, each train's frames every `period_s`."""
    catalogue = load_catalogue()
    channels = train_channels()
    rng = np.random.default_rng(seed)
    nominal = np.array(
        [sum(catalogue.channels[c].operating) / 2 for c in channels], dtype=np.float64
    )
    spread = np.array(
        [
            (catalogue.channels[c].operating[1] - catalogue.channels[c].operating[0]) / 20
            for c in channels
        ]
    )
    names = [f"train-{i:03d}" for i in range(1, trains + 1)]
    state = np.tile(nominal, (trains, 1)) + rng.normal(0, 1, (trains, len(channels))) * spread
    seq_of = dict.fromkeys(names, 0)
    shard_seq: dict[str, int] = {}
    steps = int(duration_s / period_s)
    encode = msgspec.json.Encoder().encode
    speed_at = channels.index("speed") if "speed" in channels else None
    for step in range(steps):
        ts = start_ms + int(step * period_s * 1000)
        state += rng.normal(0, 0.05, state.shape) * spread
        state = np.clip(state, nominal - 5 * spread, nominal + 5 * spread)
        values = np.round(state, 1).tolist()
        invalid = np.argwhere(rng.random(state.shape) < 1e-4).tolist()
        for t, train in enumerate(names):
            shard = shard_of(train, shards)
            n = shard_seq[shard] = shard_seq.get(shard, 0) + 1
            seq_number = str(_SEQ_BASE + n * 1_000_000_007)
            row = values[t]
            readings = {c: [row[i], "good"] for i, c in enumerate(channels)}
            for bad_t, bad_i in invalid:
                if bad_t == t:
                    readings[channels[bad_i]][1] = Quality.INVALID.value
            seq_of[train] += 1
            sensed = ts + t * 7
            # The JSON ingest emits for an `AcceptedFrame` (same fields, order and omitted
            # defaults as `codec.encode`), built from plain values: the simulator must be much
            # cheaper than the archiver it feeds.
            frame = {
                "kind": "accepted.v1",
                "train": train,
                "seq": seq_of[train],
                "ts_ms": sensed,
                "readings": readings,
                "position": [round(48.0 + t * 0.01 + step * 1e-5, 5), round(2.0 + step * 1e-5, 5)],
                "speed_kmh": row[speed_at] if speed_at is not None else None,
                "received_ms": sensed + 40,
                "ingested_ms": sensed + 55,
                "source": {
                    "stream": "telemetry-raw",
                    "shard_id": shard,
                    "sequence_number": seq_number,
                },
            }
            yield StreamRecord(
                data=encode(frame),
                sequence_number=seq_number,
                partition_key=train,
                arrival_ms=sensed + 60,
                shard_id=shard,
                stream=stream,
            )
