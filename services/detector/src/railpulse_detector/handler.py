"""One shard of Kinesis `telemetry`: accepted frames in → decide → anomalies out.

    consume (KCL batch) → decode AcceptedFrame → rules (limits, sensor faults)   → emit
                                               → model (Random Cut Forest, batch)   (SQS alerts +
                                                                                 Kinesis events)

Deciding is stateful and happens once per record: if emitting fails, the decided anomalies wait
in `_undelivered` and the retry only re-sends them, so a retry never advances a model twice.

The forests' state is snapshotted to S3 (`snapshot_prefix/<shard>.bin`) every
`snapshot_interval_s` (the first one `snapshot_first_s` after the shard is taken, plus up to as
much again, each shard its own share, so that shards do not snapshot together) and when the
shard is handed over cleanly (shutdown, shard end), and restored when a worker takes the shard,
so a failover does not start the fleet's models from zero.
The snapshot and the checkpoint are one consistent pair: the checkpoint never passes the last
record the saved snapshot has seen (`durable_position`). A snapshot never holds up scoring: the
handler takes a consistent copy of the models between two batches (`snapshot_writer.detached`)
and a `SnapshotWriter` thread encodes and uploads it while batches go on; the position moves to
the copy's once the upload has landed, and one snapshot at a time is in flight. After a crash the next owner restores the
snapshot and the KCL replays from the checkpoint, so every frame reaches the models exactly once
(frames the snapshot already saw are skipped by their sequence numbers). A checkpoint ahead of the
snapshot would leave the frames in between out of the models for good. A worker that lost its
lease writes nothing: the shard, and its snapshot, belong to the new owner.

A record that is not an accepted frame is a bug upstream: it goes to the rejects queue with its
bytes and the reason, like every other record the platform cannot use. So does a frame whose
sequence number the model's state cannot keep (beyond int64; the archiver refuses it too): it is
refused before it reaches the rules or the forests, because a value the snapshot cannot hold would
fail every snapshot, and the checkpoint, which waits for snapshots, would stop for the whole shard.
Should one get through anyway, the snapshot drops that train's small state (`ModelStatesDropped`)
rather than fail, and a snapshot that fails for any other reason counts in `SnapshotsFailed`
instead of escaping `process`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import time
import zlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_detector.conditions import merge_conditions
from railpulse_detector.drift import Drifts
from railpulse_detector.emit import AnomalyEmitter
from railpulse_detector.fleet import Fleet, FleetSettings
from railpulse_detector.model import ModelBank, ModelSettings
from railpulse_detector.rules import Rules, RuleSettings
from railpulse_detector.settings import DetectorSettings
from railpulse_detector.snapshot import SnapshotError
from railpulse_detector.snapshot_writer import (
    SnapshotAbandoned,
    SnapshotWriter,
    Written,
    detached,
)
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import BatchResult, FailureKind, RecordFailure, StreamRecord
from railpulse_shared.catalogue import Catalogue, load_catalogue
from railpulse_shared.contracts import AcceptedFrame, Anomaly
from railpulse_shared.errors import (
    ContractError,
    PermanentError,
    TransientError,
)
from railpulse_shared.kcl import Position, ShardHandler
from railpulse_shared.metrics import Metrics
from railpulse_shared.publish import KinesisPublisher, SqsPublisher
from railpulse_shared.rejects import RejectSink, consumer_rejection

__all__ = ["DetectorHandler", "shard_phase"]

logger = structlog.get_logger()


def _now_ms() -> int:
    return int(time.time() * 1000)


_GC_PAUSES: list[float] = []
"""Garbage-collection pauses (ms) since the last batch's metrics: a pause stalls scoring too."""
_gc_began = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_began[0] = time.perf_counter()
    elif len(_GC_PAUSES) < 10_000:
        _GC_PAUSES.append((time.perf_counter() - _gc_began[0]) * 1000)


def _int(position: Position) -> tuple[int, int]:
    return int(position[0]), position[1]


class DetectorHandler(ShardHandler):
    def __init__(
        self,
        settings: DetectorSettings,
        metrics: Metrics | None = None,
        *,
        catalogue: Catalogue | None = None,
    ) -> None:
        """`catalogue`: the channels to judge by, if not the settings' (`railpulse detect`)."""
        if metrics is not None and _on_gc not in gc.callbacks:
            gc.callbacks.append(_on_gc)
        self.settings = settings
        self.metrics = metrics
        catalogue = catalogue or load_catalogue(settings.catalogue)
        self.rules = Rules(
            catalogue,
            RuleSettings(
                stuck_alarms_per_day=settings.stuck_alarms_per_day,
                dropout_frames=settings.dropout_frames,
                reassert_ms=settings.reassert_ms,
            ),
        )
        self.drifts = Drifts()
        self.fleet = Fleet(
            catalogue, FleetSettings(reassert_ms=settings.reassert_ms), self.rules.settings
        )
        self.model = (
            ModelBank(
                catalogue,
                ModelSettings(
                    num_trees=settings.model_trees,
                    warmup=settings.model_warmup,
                    refractory=settings.model_warmup,
                    p_enter=settings.model_p_enter,
                    reassert_ms=settings.reassert_ms,
                ),
            )
            if settings.model_enabled
            else None
        )
        if self.model is not None:
            # What the drift and stuck-sensor checks learnt goes with the forests' snapshot.
            self.model.remember("drift", self.drifts)
            self.model.remember("repeats", self.rules)
            self.model.remember("spikes", self.rules.spikes)
            self.model.remember("fleet", self.fleet)
        self._s3: Any = None
        self._last_snapshot = time.monotonic()
        """When the last snapshot was begun (or the handler made, before the first)."""
        self._position: Position | None = None
        """The last record processed (its anomalies delivered)."""
        self._saved: Position | None = None
        """The last record the saved snapshot has seen: where the checkpoint may go."""
        self._dirty = False
        """The models moved since the last snapshot."""
        self._lost = threading.Event()
        self._writer: SnapshotWriter | None = None
        self._inflight: (
            tuple[concurrent.futures.Future[Written], Position | None, ModelBank] | None
        ) = None
        """The snapshot being written, and the position of the copy it writes."""
        self.snapshots_begun = 0
        self._spare: ModelBank | None = None
        """The last copy written: the next copy goes into its arrays (no page faults)."""
        self._stack = AsyncExitStack()
        self._undelivered: dict[tuple[int, int], list[Anomaly]] = {}
        self.emitter: AnomalyEmitter | None = None
        self.rejects: RejectSink | None = None

    async def start(self, shard_id: str) -> None:
        await super().start(shard_id)
        clients = AwsClients(self.settings)
        sqs = await self._stack.enter_async_context(clients.create("sqs"))
        kinesis = await self._stack.enter_async_context(clients.create("kinesis"))
        self.emitter = AnomalyEmitter(
            await SqsPublisher.for_queue(sqs, self.settings.queue_alerts),
            KinesisPublisher(kinesis, self.settings.stream_events),
        )
        self._s3 = await self._stack.enter_async_context(clients.create("s3"))
        self.rejects = RejectSink(
            sqs,
            self._s3,
            queue_url=(await sqs.get_queue_url(QueueName=self.settings.queue_rejects))["QueueUrl"],
            bucket=self.settings.bucket_state,
            events=KinesisPublisher(kinesis, self.settings.stream_events),
        )
        if self.model is not None:
            await self._restore()
            self._writer = SnapshotWriter(clients, self.settings.bucket_state)
            await asyncio.to_thread(self._writer.start)
            self._stack.callback(self._writer.close)

    async def flush(self) -> None:
        """Before a clean hand-over's checkpoint: save the models up to the last record. Not
        while decisions wait to be delivered: the models have seen those frames, so the next
        owner, replaying them, would skip them and their anomalies would never be sent."""
        await self._settle(wait=True)
        if not self._lost.is_set() and self._dirty and not self._undelivered:
            self._begin_snapshot()
            await self._settle(wait=True)

    def lose(self) -> None:
        """The lease is gone: another worker owns the shard and its snapshot now (a snapshot
        being encoded is not uploaded)."""
        self._lost.set()

    @property
    def snapshot_in_flight(self) -> bool:
        return self._inflight is not None

    def durable_position(self, processed: Position | None) -> Position | None:
        return processed if self.model is None else self._saved

    async def stop(self) -> None:
        await self._settle(wait=True)
        await self._stack.aclose()

    def _snapshot_key(self) -> str:
        return f"{self.settings.snapshot_prefix}/{self.shard_id}.bin"

    async def _restore(self) -> None:
        assert self.model is not None
        try:
            response = await self._s3.get_object(
                Bucket=self.settings.bucket_state, Key=self._snapshot_key()
            )
            data = await response["Body"].read()
        except ClientError as exc:
            logger.info("no_model_snapshot", key=self._snapshot_key(), error=str(exc)[:200])
            return
        try:
            self.model.loads(data)
        except SnapshotError as exc:
            logger.warning("model_snapshot_unreadable", key=self._snapshot_key(), error=str(exc))
            return
        logger.info("model_snapshot_restored", key=self._snapshot_key(), bytes=len(data))

    def _snapshot_due(self) -> float:
        """Seconds from the last snapshot (or the lease) to the next. The first waits a share of
        `snapshot_first_s` more that is the shard's own (`shard_phase`): shards leased together,
        as at a worker's start, would otherwise copy and encode their models at the same moment,
        on the same cores, every interval from then on."""
        every = self.settings.snapshot_interval_s
        if self.snapshots_begun:
            return every
        return min(self.settings.snapshot_first_s * (1 + shard_phase(self.shard_id)), every)

    def _begin_snapshot(self) -> None:
        """Take a consistent copy of the models and hand it to the writer (one at a time). The
        copy is the only part on the scoring path; encoding and upload run on the writer's
        thread. Best effort: a missed snapshot only holds the checkpoint back."""
        if self.model is None or self._writer is None or self._inflight is not None:
            return
        self._last_snapshot = time.monotonic()
        began = time.perf_counter()
        copy = detached(self.model, self._spare)
        self._spare = None  # the writer owns it now
        copy_ms = (time.perf_counter() - began) * 1000
        self._inflight = (
            self._writer.submit(copy, self._snapshot_key(), self._lost),
            self._position,
            copy,
        )
        self._dirty = False  # the copy holds everything up to here
        self.snapshots_begun += 1
        if self.metrics is not None:
            self.metrics.add("SnapshotCopyTime", copy_ms, "Milliseconds")

    async def _settle(self, *, wait: bool = False) -> None:
        """Take the outcome of the snapshot in flight, if it is done (or once it is, `wait`)."""
        if self._inflight is None:
            return
        future, position, copy = self._inflight
        if not future.done():
            if not wait:
                return
            await asyncio.wait([asyncio.wrap_future(future)])  # the outcome is read below
        self._inflight = None
        self._spare = copy  # written or not, the writer is done with it
        try:
            written = future.result()
        except SnapshotAbandoned:
            logger.info("model_snapshot_abandoned", key=self._snapshot_key())
            return
        except (ClientError, BotoCoreError) as exc:
            # The checkpoint waits for the next snapshot that lands: alarm on SnapshotsFailed.
            self._failed_snapshot("model_snapshot_failed", exc)
            return
        except Exception as exc:  # a bug, never the input's fault alone: count it, go on
            self._failed_snapshot("model_snapshot_unserialisable", exc)
            return
        if written.dropped:
            logger.error(
                "model_state_dropped", trains=written.dropped[:20], count=len(written.dropped)
            )
            if self.metrics is not None:
                self.metrics.add("ModelStatesDropped", len(written.dropped))
        self._saved = position
        if not self._dirty:
            self._saved = self._position  # nothing reached the models since the copy
        logger.info(
            "model_snapshot_saved",
            key=self._snapshot_key(),
            bytes=written.nbytes,
            position=position,
            encode_ms=round(written.encode_s * 1000, 1),
            upload_ms=round(written.upload_s * 1000, 1),
        )
        if self.metrics is not None:
            self.metrics.add("SnapshotBytes", written.nbytes, "Bytes")
            self.metrics.add(
                "SnapshotWriteTime", (written.encode_s + written.upload_s) * 1000, "Milliseconds"
            )

    def _failed_snapshot(self, event: str, exc: BaseException) -> None:
        self._dirty = True  # the models still hold what the lost copy held
        logger.warning(event, error=f"{type(exc).__name__}: {exc}"[:300])
        if self.metrics is not None:
            self.metrics.add("SnapshotsFailed", 1)

    def decide(self, frames: Sequence[AcceptedFrame]) -> list[list[Anomaly]]:
        """What the detector concludes from a batch, per frame, in order (stateful: once per
        frame). The rules judge every frame; the forests see the live ones in order; what they
        find about one channel in one frame is one anomaly (conditions.py)."""
        by_frame = self.model.score(frames) if self.model is not None else {}
        detected = _now_ms()
        return [
            [
                msgspec.structs.replace(a, detected_ms=detected)
                for a in merge_conditions(
                    [
                        *self.rules.check(frame),
                        *self.drifts.check(frame),
                        *self.fleet.check(frame),
                        *by_frame.get((frame.train, frame.seq), []),
                    ]
                )
            ]
            for frame in frames
        ]

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[list[Anomaly]]:
        result: BatchResult[list[Anomaly]] = BatchResult()
        decided: list[tuple[StreamRecord, list[Anomaly]]] = []
        fresh: list[tuple[StreamRecord, AcceptedFrame]] = []
        for record in records:
            key = record.position
            if key in self._undelivered:
                decided.append((record, self._undelivered[key]))
                continue
            try:
                event = codec.decode_event(record.data)
            except ContractError as exc:
                result.failed.append(
                    RecordFailure(record, FailureKind.POISON, f"{type(exc).__name__}: {exc}", exc)
                )
                continue
            if not isinstance(event, AcceptedFrame):
                error = PermanentError(f"expected accepted.v1, got {type(event).__name__}")
                result.failed.append(RecordFailure(record, FailureKind.POISON, str(error), error))
                continue
            fresh.append((record, event))
        scoring = time.perf_counter()
        verdicts = self.decide([f for _, f in fresh])
        scoring_ms = (time.perf_counter() - scoring) * 1000
        for (record, _), found in zip(fresh, verdicts, strict=True):
            self._undelivered[record.position] = found
            decided.append((record, found))
        self._dirty = self._dirty or bool(fresh)
        assert self.emitter is not None, "start() opens the emitter"
        anomalies = [a for _, found in decided for a in found]
        try:
            await self.emitter.emit(anomalies)
        except TransientError as exc:
            for record, _ in decided:
                result.failed.append(RecordFailure(record, FailureKind.TRANSIENT, str(exc), exc))
            return result
        for record, found in decided:
            self._undelivered.pop(record.position, None)
            result.succeeded.append((record, found))
        last = max((r.position for r in records), default=None)
        if last is not None and (self._position is None or last > _int(self._position)):
            self._position = (str(last[0]), last[1])  # a retried subset never moves it back
            if not self._dirty and self._inflight is None:
                self._saved = self._position  # nothing reached the models: the snapshot holds
        await self._settle()
        if self._dirty and time.monotonic() - self._last_snapshot >= self._snapshot_due():
            self._begin_snapshot()
        if self.metrics is not None:
            self.metrics.add("FramesScored", len(decided))
            if fresh:  # what a batch spends scoring: the part of the detector hop that is ours
                self.metrics.add("ScoringTime", scoring_ms, "Milliseconds")
            if _GC_PAUSES:
                self.metrics.add("GcPauseTime", max(_GC_PAUSES), "Milliseconds")
                _GC_PAUSES.clear()
            self.metrics.add("AnomaliesEmitted", len(anomalies))
            for anomaly in anomalies:
                latency = anomaly.detected_ms - (anomaly.received_ms or anomaly.ts_ms)
                self.metrics.add("DetectionLatency", latency, "Milliseconds")
        return result

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        assert self.rejects is not None, "start() opens the rejects queue"
        await self.rejects.send(
            [
                consumer_rejection(
                    f,
                    self.settings.service,
                    stream=self.settings.stream_telemetry,
                    shard_id=self.shard_id,
                )
                for f in failures
            ],
            _now_ms(),
        )


_GOLDEN = (5**0.5 - 1) / 2


def shard_phase(shard_id: str) -> float:
    """A fraction in [0, 1) that sets shards apart: the golden-ratio sequence over the number
    that ends a Kinesis shard id (`shardId-000000000003` is 3), so that any few consecutive
    shards fall far from one another; another id falls where its CRC-32 puts it."""
    tail = shard_id.rpartition("-")[2]
    number = int(tail) if tail.isdigit() else zlib.crc32(shard_id.encode())
    return (number * _GOLDEN) % 1.0
