"""Can a train crew trust the alerts? Recall, delay and false alerts of the detector's own decisions
over whole simulated days of a fleet with faults.

    make bench-faults                                     # 20 trains x 24 h, held-out seed 101
    make bench-faults BENCH_ARGS="--trains 10 --hours 8 --seeds 101"

In-process, no stack, deterministic by seed. Per seed, the fleet simulator's physics
(`railpulse_edge.sim`, `day=True`) drives the trains through a day at 1 Hz from 04:00: depot,
cold start and preparation, service on their lines with stops, tunnels, passenger load, their own
hot or cold day, sensor noise and drift. About 60 % of the trains get two faults each (every kind
at its default severity once per seed, the rest at half or double), at random times between
06:00 and 16:00 (scaled down for shorter runs), on random channels; the others stay healthy.
Frames go the way they go in service: built on the train, held while it is in a tunnel and
backfilled (`backfill: true`) when it comes out, normalised by ingest's own `Normaliser`, and
decided by the detector service's own `DetectorHandler.decide` (the same rules, features, forests
and thresholds, built from default `DetectorSettings`), fed in blocks of `BLOCK` s. Trains are
simulated in shards of `SHARD` (one model and one detector each, like a Kinesis shard), so the
result does not depend on `--workers`.

Definitions (the ground truth comes from `ScenarioRunner`, see `railpulse_edge.sim.scenario`):
- A fault has an onset, a kind, a channel, the channels that show it (`fault_channels`), a
  severity (a multiple of the kind's default `rate`/`magnitude`) and, once the true physical state
  gets there, the time it reached its critical band (sudden kinds: at onset).
- An alert is what the crew sees: an alarm per (train, alert_key), as the notifier keeps it: the
  anomalies of one key with no gap of `clear_after_s` (the notifier's default) between them are one
  alert. Alert time is when the detector decided it: the frame's time for a live frame, the time it
  arrived for a backfilled one.
- A fault is detected by the first anomaly on its train, in an alert raised at or after its onset,
  before its end (plus `GRACE_S`), that names one of the fault's channels in its attribution (an
  alert already open before the onset tells the crew nothing new); delay = that anomaly's time -
  onset. It is caught before the critical band if that is before the critical
  time (or the fault never reached it).
- A sudden fault (`SUDDEN_KINDS`) is within 10 s if its delay is at most 10 s (`within_10s`).
  One that began while its train held its frames (a tunnel, a link outage) could be seen only once
  they were sent: `within_10s_of_data` counts its delay from then, and `held_on_train` says how
  many such faults there were.
- A false alert is an alert none of whose anomalies detects or follows a fault on its train in
  that way: every alert on a healthy train, and alerts on a faulty train about other channels or
  before the onset. `false_alerts_per_train_day` counts healthy trains only (faulty trains'
  false alerts are reported beside it), per 24 h of simulated time.

Seeds: `TUNING_SEEDS` are the seeds settings were chosen on or diagnosed with (none of the
detector's settings was fitted on a bench seed; the demo's seed 7 is where `model_warmup` and
`model_z_enter` were set; seed 103 is where the humidity checks' false alerts were diagnosed); the
defaults in `HELD_OUT_SEEDS` were never used for that. A run on a tuning seed says so.

Cost: ~0.5 ms of CPU per frame, most of it the detector. The default run (seed 101: 20 trains x
24 h, 1.36 M frames) took 18 min here on 2 processes, 33 min when the 2-core machine was busier;
`--trains/--hours/--seeds` make shorter runs.

A scenario file instead (`--scenario edge/scenarios/demo.toml --seconds 300`): the fleet the way
`make demo` runs it (`railpulse-fleet`: `FleetModel(day=False)`, trains in service from the
start, frames live except during the scenario's link outages, which are spooled and backfilled),
its `--trains` split over `--shards` detector shards by the train's partition key as Kinesis
splits them (the local stack's `telemetry` has 2), decided every second. Same accounting.

Progress on stderr; the last stdout line is one JSON object with `recall`,
`false_alerts_per_train_day`, `delay_p50_s`, `delay_p90_s`, `per_kind`, `seeds` and details.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.settings import DetectorSettings
from railpulse_edge.sim.model import CHANNELS, FleetModel
from railpulse_edge.sim.scenario import (
    FAULT_KINDS,
    SUDDEN_KINDS,
    Fault,
    Scenario,
    ScenarioRunner,
    default_severity,
    load_scenario,
)
from railpulse_ingest.normalise import Normaliser
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import AcceptedFrame, Frame, RuleEnvelope, SourcePosition

SHARD = 10
BLOCK = 30
GRACE_S = 300.0
START_CLOCK_S = 4 * 3600.0
EPOCH_MS = 1_798_416_000_000  # 2026-12-28T00:00Z: a Monday
HELD_OUT_SEEDS = (101, 102, 104, 105)
"""Never used to choose a setting; the default run uses the first (add more with --seeds)."""
TUNING_SEEDS = (7, 103)
"""Seed 103 since the humidity checks were diagnosed on it (its false `cabin_humidity_1` alerts)."""
KINDS = tuple(k for k in FAULT_KINDS if k != "link_outage")
SEVERITIES = (0.5, 2.0)
"""Besides the default (1.0)."""
FAULTS_PER_TRAIN = 2
FAULTY_SHARE = 0.6
_MAY_HOLD = {c.name for c in load_catalogue().channels.values() if c.may_hold}


def log(msg: str) -> None:
    print(f"[bench-faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the fault plan ------------------------------------------------------------------------------
def _channel_for(kind: str, rng: np.random.Generator) -> str | None:
    pick = {
        "bearing_degradation": lambda: f"bearing_temp_{rng.integers(1, 9)}",
        "motor_overheat": lambda: f"motor_temp_{rng.integers(1, 5)}",
        "brake_leak": lambda: f"brake_cyl_pressure_{rng.integers(1, 3)}",
        "slow_door": lambda: f"door_close_time_{rng.integers(1, 5)}",
        "wheel_flat": lambda: f"vibration_{rng.integers(1, 5)}",
        "air_leak": lambda: "main_reservoir_pressure",
        "pantograph_fault": lambda: "line_voltage",
        # A stuck sensor is one that should move: not speed, door timings, brake cylinders.
        "stuck_sensor": lambda: str(rng.choice([c for c in CHANNELS if c not in _MAY_HOLD])),
        "sensor_dropout": lambda: str(rng.choice(CHANNELS)),
        "spike": lambda: str(rng.choice([c for c in CHANNELS if c not in _MAY_HOLD])),
    }.get(kind)
    return pick() if pick else None


def _fault(kind: str, severity: float, train: int, at_s: float, rng: np.random.Generator) -> Fault:
    channel = _channel_for(kind, rng)
    rate, magnitude = default_severity(kind)
    duration: float | None = None
    if kind == "spike" and channel is not None:
        low, high = load_catalogue().channels[channel].operating
        magnitude = 0.5 * (high - low)  # half the operating span: clearly wrong, not always absurd
    if kind == "sensor_dropout":
        duration = 600.0 * severity
    return Fault(
        train=train,
        kind=kind,
        at_s=at_s,
        duration_s=duration,
        channel=channel,  # type: ignore[arg-type]
        rate=rate * severity if rate is not None else None,
        magnitude=magnitude * severity if magnitude is not None else None,
    )


def fault_plan(seed: int, trains: int, hours: float) -> tuple[list[Fault], dict[int, float]]:
    """The faults of one seed's fleet (train = index) and each fault's severity multiple, by its
    index in the list. Every kind once at its default severity, then random kinds at half or
    double; two per faulty train, on different channels and subsystems."""
    rng = np.random.default_rng([seed, 0xFA17])
    faulty = sorted(
        rng.choice(trains, max(1, round(FAULTY_SHARE * trains)), replace=False).tolist()
    )
    slots = len(faulty) * FAULTS_PER_TRAIN
    deck = [(k, 1.0) for k in rng.permutation(KINDS).tolist()]
    while len(deck) < slots:
        deck.append((str(rng.choice(KINDS)), float(rng.choice(SEVERITIES))))
    deck = deck[:slots]
    first, span = 2.0 * 3600.0, 0.45 * max(hours - 2.0, 0.5) * 3600.0
    once = {"hvac_failure", "air_leak", "pantograph_fault", "brake_leak"}  # one per train
    faults: list[Fault] = []
    severity: dict[int, float] = {}
    used: dict[int, set[str]] = {t: set() for t in faulty}
    queue = list(deck)
    for _ in range(len(queue) * 4):
        if not queue:
            break
        kind, sev = queue.pop(0)
        options = [
            t
            for t in faulty
            if len(used[t]) < FAULTS_PER_TRAIN
            and not (kind in once and used[t] & once)
            and kind not in used[t]
        ]
        if not options:
            continue
        train = int(rng.choice(options))
        f = _fault(kind, sev, train, float(first + rng.uniform(0, span)), rng)
        clash = any(
            g.train == train and g.channel is not None and g.channel == f.channel for g in faults
        )
        if clash:
            queue.append((kind, sev))
            continue
        used[train].add(kind)
        severity[len(faults)] = sev
        faults.append(f)
    return faults, severity


# -- one shard: simulate, deliver, decide --------------------------------------------------------
@dataclass(frozen=True)
class ShardSpec:
    seed: int
    shard: int
    names: tuple[str, ...]
    faults: tuple[Fault, ...]
    hours: float
    day: bool = True
    clock_s: float = START_CLOCK_S


@dataclass
class ShardResult:
    names: tuple[str, ...]
    truth: list[dict[str, Any]]
    anomalies: list[tuple[str, float, str, str, str, tuple[str, ...]]]
    """(train, time s, alert_key, category, severity, attributed channels)."""
    base_ms: int = 0
    """Sensor time of the simulation's start: truth times are `base_ms + 1000 * t`."""
    frames: int = 0
    backfilled: int = 0
    powered_s: dict[str, int] = field(default_factory=dict)
    spooled: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    """Per train, (first, last, sent) times s of each run of frames the train held (a tunnel, a
    link outage) and when it sent them: a fault that began then reached the platform only then."""

    def hold(self, train: str, t: float) -> None:
        runs = self.spooled.setdefault(train, [])
        if runs and math.isnan(runs[-1][2]):
            runs[-1] = (runs[-1][0], t, math.nan)
        else:
            runs.append((t, t, math.nan))

    def send(self, train: str, t: float) -> None:
        runs = self.spooled.get(train)
        if runs and math.isnan(runs[-1][2]):
            runs[-1] = (runs[-1][0], runs[-1][1], t)

    def reached_platform(self, train: str, onset: float) -> float:
        """When the first frame at or after `onset` reached the platform."""
        for first, last, sent in self.spooled.get(train, ()):
            if first - 1.0 < onset <= last:
                return math.inf if math.isnan(sent) else sent
        return onset


def run_shard(spec: ShardSpec) -> ShardResult:
    model = FleetModel(
        len(spec.names),
        seed=zlib.crc32(f"{spec.seed}:{spec.shard}".encode()),
        day=spec.day,
        clock_s=spec.clock_s,
    )
    truth = io.StringIO()
    runner = ScenarioRunner(Scenario(fault=list(spec.faults)), list(spec.names), truth)
    handler = DetectorHandler(DetectorSettings())
    normaliser = Normaliser(load_catalogue(), ts_min_ms=0, ts_max_future_ms=3_600_000)
    source = SourcePosition(
        stream="telemetry", shard_id=f"shardId-{spec.shard:012d}", sequence_number="0"
    )
    result = ShardResult(spec.names, [], [], base_ms=EPOCH_MS + int(spec.clock_s * 1000))
    seq = [0] * len(spec.names)
    held: list[list[Frame]] = [[] for _ in spec.names]
    result.powered_s = dict.fromkeys(spec.names, 0)
    pending: list[tuple[AcceptedFrame, float]] = []
    steps = int(spec.hours * 3600)

    def accept(frame: Frame, now_ms: int, t: float) -> None:
        envelope = RuleEnvelope(
            topic=f"trains/{frame.train}/telemetry",
            principal=frame.train,
            received_ms=now_ms,
            payload=b"",
        )
        for accepted in normaliser.accept(frame, envelope, source, now_ms):
            pending.append((accepted, t))

    def decide() -> None:
        frames = [f for f, _ in pending]
        for (_, t), found in zip(pending, handler.decide(frames), strict=True):
            for a in found:
                result.anomalies.append(
                    (
                        a.train,
                        t,
                        a.alert_key,
                        a.category.value,
                        a.severity.name.lower(),
                        tuple(c.channel for c in a.channels),
                    )
                )
        result.frames += len(frames)
        pending.clear()

    for step in range(1, steps + 1):
        now_ms = result.base_ms + step * 1000
        runner.before_step(model, model.t + 1.0, now_ms)
        snap = model.step(1.0)
        runner.after_step(snap.values)
        values = np.round(snap.values, 3)
        values[~np.isfinite(values)] = np.nan
        rows, speeds = values.tolist(), np.round(snap.speed_kmh, 2).tolist()
        for i, train in enumerate(spec.names):
            if not snap.powered[i]:
                continue
            result.powered_s[train] += 1
            seq[i] += 1
            readings = {c: x for c, x in zip(CHANNELS, rows[i], strict=True) if x == x}
            frame = Frame(
                train=train, seq=seq[i], ts_ms=now_ms, readings=readings, speed_kmh=speeds[i]
            )
            if snap.in_tunnel[i]:
                held[i].append(frame)  # spooled on the train: no link in a tunnel
                result.hold(train, float(step))
                continue
            accept(frame, now_ms, float(step))
            if held[i]:
                result.send(train, float(step))
                # Out of the tunnel: the live frame goes at once, the spool is backfilled after it.
                result.backfilled += len(held[i])
                for old in held[i]:
                    accept(backfilled(old), now_ms, float(step))
                held[i].clear()
        if step % BLOCK == 0:
            decide()
        if step % 3600 == 0:
            log(
                f"seed {spec.seed} shard {spec.shard}: {step // 3600}/{spec.hours:g} h, "
                f"{result.frames} frames, {len(result.anomalies)} anomalies"
            )
    decide()
    result.truth = [json.loads(line) for line in truth.getvalue().splitlines()]
    return result


def backfilled(frame: Frame) -> Frame:
    """A spooled frame as the train sends it once it has a link again."""
    return msgspec.structs.replace(frame, backfill=True)


def kinesis_shard(key: str, shards: int) -> int:
    """The shard of a stream of `shards` equal hash ranges that a partition key lands on."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) * shards >> 128


def run_scenario(
    path: str, trains: int, seconds: int, shards: int
) -> tuple[list[ShardResult], Scenario]:
    """The scenario's fleet as `railpulse-fleet` drives it (see the module docstring), decided
    by one `DetectorHandler` per shard; one `ShardResult` per shard."""
    scenario = load_scenario(path)
    names = [f"train-{i:03d}" for i in range(1, trains + 1)]
    model = FleetModel(trains, seed=scenario.seed)
    truth = io.StringIO()
    runner = ScenarioRunner(scenario, names, truth)
    base_ms = EPOCH_MS + int(model.clock_s * 1000)
    home = [kinesis_shard(n, shards) for n in names]
    handlers = [DetectorHandler(DetectorSettings()) for _ in range(shards)]
    normaliser = Normaliser(load_catalogue(), ts_min_ms=0, ts_max_future_ms=3_600_000)
    results = [
        ShardResult(
            tuple(n for n, h in zip(names, home, strict=True) if h == k), [], [], base_ms=base_ms
        )
        for k in range(shards)
    ]
    held: list[list[Frame]] = [[] for _ in names]
    down_until = [0.0] * trains
    for step in range(1, seconds + 1):
        now_ms = base_ms + step * 1000
        for outage in runner.before_step(model, model.t + 1.0, now_ms):
            down_until[outage.train] = step + outage.seconds
        snap = model.step(1.0)
        runner.after_step(snap.values)
        values = np.round(snap.values, 3)
        values[~np.isfinite(values)] = np.nan
        rows, speeds = values.tolist(), np.round(snap.speed_kmh, 2).tolist()
        pending: list[list[AcceptedFrame]] = [[] for _ in range(shards)]
        for i, train in enumerate(names):
            readings = {c: x for c, x in zip(CHANNELS, rows[i], strict=True) if x == x}
            frame = Frame(
                train=train, seq=step, ts_ms=now_ms, readings=readings, speed_kmh=speeds[i]
            )
            outgoing = [frame]
            if step < down_until[i]:
                held[i].append(frame)
                results[home[i]].hold(train, float(step))
                continue
            if held[i]:
                results[home[i]].send(train, float(step))
            outgoing += [backfilled(f) for f in held[i]]
            results[home[i]].backfilled += len(held[i])
            held[i].clear()
            for f in outgoing:
                envelope = RuleEnvelope(
                    topic=f"trains/{train}/telemetry",
                    principal=train,
                    received_ms=now_ms,
                    payload=b"",
                )
                source = SourcePosition(
                    stream="telemetry", shard_id=f"shardId-{home[i]:012d}", sequence_number="0"
                )
                pending[home[i]] += normaliser.accept(f, envelope, source, now_ms)
        for k, handler in enumerate(handlers):
            for found in handler.decide(pending[k]):
                for a in found:
                    results[k].anomalies.append(
                        (
                            a.train,
                            float(step),
                            a.alert_key,
                            a.category.value,
                            a.severity.name.lower(),
                            tuple(c.channel for c in a.channels),
                        )
                    )
            results[k].frames += len(pending[k])
    lines = [json.loads(line) for line in truth.getvalue().splitlines()]
    for r in results:
        r.truth = [t for t in lines if t["train"] in r.names]
    return results, scenario


def scenario_report(path: str, trains: int, seconds: int, shards: int) -> dict[str, Any]:
    results, scenario = run_scenario(path, trains, seconds, shards)
    severities = {
        (
            f.train if isinstance(f.train, str) else f"train-{f.train + 1:03d}",
            f.kind,
            f.channel,
        ): 1.0
        for f in scenario.fault
    }
    faults = [
        t for r in results for t in r.truth if "start_ms" in t and t["fault"] != "link_outage"
    ]
    for t in faults:
        severities.setdefault((t["train"], t["fault"], t["channel"]), 1.0)
    report = score(results, severities, seconds / 3600.0, NotifierSettings().clear_after_s)
    report["scenario"], report["trains"], report["seconds"], report["shards"] = (
        path,
        trains,
        seconds,
        shards,
    )
    report["shard_trains"] = [len(r.names) for r in results]
    report["delays_s"] = _delays(results)
    return report


def _delays(results: Sequence[ShardResult]) -> dict[str, float | None]:
    """Each fault's delay, by `train/kind`: the first anomaly naming one of its channels at or
    after its onset (the accounting's rule, without the window's end)."""
    out: dict[str, float | None] = {}
    for r in results:
        for t in r.truth:
            if "start_ms" not in t or t["fault"] == "link_outage":
                continue
            onset = (t["start_ms"] - r.base_ms) / 1000
            hits = [
                a[1]
                for a in r.anomalies
                if a[0] == t["train"] and a[1] >= onset and set(a[5]) & set(t["channels"])
            ]
            out[f"{t['train']}/{t['fault']}"] = min(hits) - onset if hits else None
    return out


# -- accounting ----------------------------------------------------------------------------------
@dataclass
class Scored:
    kind: str
    severity: float
    train: str
    delay_s: float | None
    waited_s: float
    """How long after the onset its first frame reached the platform (0 unless the train held it:
    a fault that began in a tunnel can be seen only once the train is out)."""
    before_critical: bool
    reached_critical: bool


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def score(
    results: Sequence[ShardResult],
    severities: dict[tuple[str, str, str | None], float],
    hours: float,
    clear_after_s: float,
) -> dict[str, Any]:
    """Detections, delays and false alerts from the shards' truth and anomalies (see the module
    docstring for the definitions)."""
    scored: list[Scored] = []
    false_healthy = false_faulty = 0
    healthy_trains = 0
    by_category: dict[str, dict[str, int]] = {}
    false_keys: Counter[str] = Counter()
    for r in results:
        starts = [t for t in r.truth if "start_ms" in t and t["fault"] != "link_outage"]
        ends = {
            (t["train"], t["fault"], t["channel"]): t["end_ms"] for t in r.truth if "end_ms" in t
        }
        critical = {
            (t["train"], t["fault"], t["channel"]): t["critical_ms"]
            for t in r.truth
            if "critical_ms" in t
        }
        t0 = r.base_ms
        windows = []  # (train, from s, to s, channels, key)
        onsets = {}
        for f in starts:
            key = (f["train"], f["fault"], f["channel"])
            onset = onsets[key] = (f["start_ms"] - t0) / 1000
            end = (ends[key] - t0) / 1000 if key in ends else math.inf
            windows.append((f["train"], onset, end + GRACE_S, set(f["channels"]), key))
        # Alerts: anomalies of one (train, key) without a clear_after_s gap; each anomaly's alert
        # is known by when it was raised.
        raised: list[float] = []
        last: dict[tuple[str, str], tuple[float, float]] = {}  # (train, key) -> (raised, last seen)
        for train, t, key, _, _, _ in r.anomalies:
            seen = last.get((train, key))
            began = seen[0] if seen is not None and t - seen[1] < clear_after_s else t
            last[(train, key)] = (began, t)
            raised.append(began)
        # An anomaly detects a fault if it names one of its channels inside its window, in an
        # alert raised at or after the onset (an alert raised before does not tell the crew).
        explained: set[int] = set()
        first: dict[tuple[str, str, str | None], float] = {}
        for n, (train, t, _, _, _, channels) in enumerate(r.anomalies):
            for w_train, start, stop, chans, key in windows:
                if train == w_train and start <= raised[n] and t <= stop and chans & set(channels):
                    explained.add(n)
                    first.setdefault(key, t)
        for f in starts:
            key = (f["train"], f["fault"], f["channel"])
            detected = first.get(key)
            crit = (critical[key] - t0) / 1000 if key in critical else None
            scored.append(
                Scored(
                    kind=f["fault"],
                    severity=severities[key],
                    train=f["train"],
                    delay_s=None if detected is None else detected - onsets[key],
                    waited_s=r.reached_platform(f["train"], onsets[key]) - onsets[key],
                    before_critical=detected is not None and (crit is None or detected < crit),
                    reached_critical=crit is not None,
                )
            )
        faulty = {f["train"] for f in starts}
        healthy_trains += sum(1 for n in r.names if n not in faulty)
        # Alerts: anomalies of one (train, key) without a clear_after_s gap.
        episodes: dict[tuple[str, str], tuple[float, bool, str]] = {}
        for n, (train, t, key, category, _, _) in enumerate(r.anomalies):
            ep = episodes.get((train, key))
            if ep is not None and t - ep[0] < clear_after_s:
                episodes[(train, key)] = (t, ep[1] or n in explained, ep[2])
                continue
            if ep is not None:
                _close(ep, key, train in faulty, by_category, false_keys)
                false_healthy += not ep[1] and train not in faulty
                false_faulty += not ep[1] and train in faulty
            episodes[(train, key)] = (t, n in explained, category)
        for (train, key), ep in episodes.items():
            _close(ep, key, train in faulty, by_category, false_keys)
            false_healthy += not ep[1] and train not in faulty
            false_faulty += not ep[1] and train in faulty

    per_kind: dict[str, Any] = {}
    for kind in KINDS:
        mine = [s for s in scored if s.kind == kind]
        if not mine:
            continue
        delays = [s.delay_s for s in mine if s.delay_s is not None]
        default = [s for s in mine if s.severity == 1.0]
        per_kind[kind] = {
            "faults": len(mine),
            "recall": round(len(delays) / len(mine), 3),
            "recall_default_severity": round(
                sum(s.delay_s is not None for s in default) / len(default), 3
            )
            if default
            else None,
            "delay_p50_s": _percentile(delays, 50),
            "delay_p90_s": _percentile(delays, 90),
            "before_critical": None
            if kind in SUDDEN_KINDS
            else round(sum(s.before_critical for s in mine) / len(mine), 3),
            "reached_critical": sum(s.reached_critical for s in mine),
            "by_severity": {
                f"{sev:g}": {"faults": len(at), "caught": sum(s.delay_s is not None for s in at)}
                for sev in sorted({s.severity for s in mine})
                if (at := [s for s in mine if s.severity == sev])
            },
        }
        if kind in SUDDEN_KINDS:
            per_kind[kind]["within_10s"] = round(sum(d <= 10 for d in delays) / len(mine), 3)
            # The same from when the platform had the fault's first frame.
            per_kind[kind]["within_10s_of_data"] = round(
                sum(s.delay_s is not None and s.delay_s - s.waited_s <= 10 for s in mine)
                / len(mine),
                3,
            )
            per_kind[kind]["held_on_train"] = sum(s.waited_s > 0 for s in mine)
    delays = [s.delay_s for s in scored if s.delay_s is not None]
    train_days = max(healthy_trains * hours / 24.0, 1e-9)
    return {
        "recall": round(len(delays) / len(scored), 3) if scored else None,
        "false_alerts_per_train_day": round(false_healthy / train_days, 3),
        "delay_p50_s": _percentile(delays, 50),
        "delay_p90_s": _percentile(delays, 90),
        "per_kind": per_kind,
        "false_alerts_healthy": false_healthy,
        "false_alerts_faulty_trains": false_faulty,
        "healthy_train_days": round(train_days, 2),
        "faults": len(scored),
        "alerts_by_kind": by_category,
        "false_alert_keys": dict(false_keys.most_common(15)),
    }


def _close(
    ep: tuple[float, bool, str],
    key: str,
    faulty: bool,
    by_category: dict[str, dict[str, int]],
    false_keys: Counter[str],
) -> None:
    counts = by_category.setdefault(ep[2], {"true": 0, "false_healthy": 0, "false_faulty": 0})
    counts["true" if ep[1] else "false_faulty" if faulty else "false_healthy"] += 1
    if not ep[1]:
        false_keys[key] += 1


# -- the run ---------------------------------------------------------------------------------------
def shard_specs(
    seed: int, trains: int, hours: float
) -> tuple[list[ShardSpec], dict[tuple[str, str, str | None], float]]:
    faults, severity = fault_plan(seed, trains, hours)
    names = [f"train-{i:03d}" for i in range(1, trains + 1)]
    specs, severities = [], {}
    for shard, first in enumerate(range(0, trains, SHARD)):
        mine = names[first : first + SHARD]
        local = []
        for n, f in enumerate(faults):
            index = int(f.train)
            if first <= index < first + SHARD:
                local.append(
                    Fault(
                        train=index - first,
                        kind=f.kind,
                        at_s=f.at_s,
                        duration_s=f.duration_s,
                        channel=f.channel,
                        rate=f.rate,
                        magnitude=f.magnitude,
                    )
                )
                severities[(names[index], f.kind, f.channel)] = severity[n]
        specs.append(ShardSpec(seed, shard, tuple(mine), tuple(local), hours))
    return specs, severities


def run(seeds: Sequence[int], trains: int, hours: float, workers: int) -> dict[str, Any]:
    started = time.monotonic()
    specs: list[ShardSpec] = []
    severities: dict[tuple[str, str, str | None], float] = {}
    for seed in seeds:
        s, sev = shard_specs(seed, trains, hours)
        specs += s
        severities |= {(f"{seed}/{k[0]}", k[1], k[2]): v for k, v in sev.items()}
    log(
        f"{len(seeds)} seed(s) x {trains} trains x {hours:g} h in {len(specs)} shards on {workers} process(es)"
    )
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(run_shard, specs))
    else:
        results = [run_shard(s) for s in specs]
    # Train names repeat across seeds: qualify them by seed for the accounting.
    qualified = [_qualify(r, spec.seed) for r, spec in zip(results, specs, strict=True)]
    report = score(qualified, severities, hours, NotifierSettings().clear_after_s)
    report["seeds"] = {
        "used": list(seeds),
        "tuning": list(TUNING_SEEDS),
        "held_out": all(s not in TUNING_SEEDS for s in seeds),
    }
    report["trains"], report["hours"] = trains, hours
    report["frames"] = sum(r.frames for r in results)
    report["backfilled_frames"] = sum(r.backfilled for r in results)
    log(f"done in {time.monotonic() - started:.0f} s")  # not in the JSON: same seed, same JSON
    return report


def _qualify(r: ShardResult, seed: int) -> ShardResult:
    q = f"{seed}/"
    return ShardResult(
        names=tuple(q + n for n in r.names),
        truth=[{**t, "train": q + t["train"]} for t in r.truth],
        anomalies=[(q + a[0], *a[1:]) for a in r.anomalies],
        base_ms=r.base_ms,
        frames=r.frames,
        backfilled=r.backfilled,
        powered_s={q + n: s for n, s in r.powered_s.items()},
        spooled={q + n: runs for n, runs in r.spooled.items()},
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trains", type=int, default=20)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours from 04:00")
    parser.add_argument(
        "--seeds",
        default=str(HELD_OUT_SEEDS[0]),
        help=f"comma-separated (default: the first held-out seed; held out: {HELD_OUT_SEEDS})",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes (the result does not depend on it)"
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="a scenario file (e.g. edge/scenarios/demo.toml) instead of the seeds' days",
    )
    parser.add_argument("--seconds", type=int, default=300, help="with --scenario: how long")
    parser.add_argument("--shards", type=int, default=2, help="with --scenario: detector shards")
    args = parser.parse_args(argv)
    if args.scenario:
        report = scenario_report(args.scenario, args.trains, args.seconds, args.shards)
        log(f"delays {report['delays_s']}")
        log(
            f"recall {report['recall']}, false alerts {report['false_alerts_healthy']} on healthy trains, "
            f"{report['false_alerts_faulty_trains']} on faulty ones: {report['false_alert_keys']}"
        )
        print(json.dumps(report))
        return
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    report = run(seeds, args.trains, args.hours, args.workers)
    for kind, k in report["per_kind"].items():
        log(
            f"{kind:20s} recall {k['recall']:.2f} p50 {k['delay_p50_s']} s p90 {k['delay_p90_s']} s "
            f"before critical {k['before_critical']}"
        )
    log(
        f"recall {report['recall']}, false alerts per healthy train-day {report['false_alerts_per_train_day']}"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
