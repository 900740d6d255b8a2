"""The ingest `ShardHandler`: decode → validate → normalise → dedup (the pipeline), then forward
accepted frames to `telemetry` and report the rest so the `ShardProcessor` dead-letters them.

Outcome per stream record: forwarded (or a duplicate) → succeeded; rejected → poison (the
processor calls `dead_letter`, which puts it on the rejects queue, then may checkpoint past it);
PutRecords still failing after its budget → transient (retried, never checkpointed). A frame is
remembered by the deduplicator only once Kinesis accepted it, so a retry re-sends exactly what
did not land.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog

from railpulse_ingest.dedup import Deduplicator
from railpulse_ingest.forward import Forwarder
from railpulse_ingest.normalise import Normaliser
from railpulse_ingest.pipeline import Pipeline
from railpulse_ingest.recover import recover, recovery_start
from railpulse_ingest.reject import RawKind, Rejection, RejectSink
from railpulse_ingest.settings import IngestSettings
from railpulse_ingest.silence import SilenceWatch
from railpulse_shared import metric_names as mn
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import BatchResult, FailureKind, RecordFailure, StreamRecord
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import RejectReason, SourcePosition
from railpulse_shared.errors import PermanentError, TransientError
from railpulse_shared.kcl import ShardHandler
from railpulse_shared.metrics import Metrics
from railpulse_shared.publish import KinesisPublisher

__all__ = ["IngestHandler", "RejectedRecordError", "build_pipeline"]

logger = structlog.get_logger()

SKEW_LOG_EVERY_S = 300.0
"""A device whose clock stays skewed is logged again this often (its metric is per batch)."""


class RejectedRecordError(PermanentError):
    """Carries a `Rejection` from `process` to `dead_letter` (via `RecordFailure.exception`)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.reason.value}: {rejection.detail}")
        self.rejection = rejection


def build_pipeline(settings: IngestSettings) -> Pipeline:
    normaliser = Normaliser(
        load_catalogue(settings.catalogue),
        ts_min_ms=settings.ts_min_ms,
        ts_max_future_ms=settings.ts_max_future_ms,
        clock_skew_tolerance_ms=settings.clock_skew_tolerance_ms,
    )
    dedup = Deduplicator(settings.dedup_window, settings.dedup_max_counters)
    return Pipeline(normaliser, dedup, max_payload_bytes=settings.max_payload_bytes)


class IngestHandler(ShardHandler):
    def __init__(
        self,
        settings: IngestSettings,
        *,
        metrics: Metrics | None = None,
        clients: AwsClients | None = None,
        recover: bool = True,
    ) -> None:
        self.settings = settings
        self.clients = clients or AwsClients(settings)
        self.metrics = metrics
        self.pipeline = build_pipeline(settings)
        self.recover = recover
        self.checkpoint_sequence: str | None = None
        """The shard's checkpoint when this processor started (set by the processor)."""
        self._stack = contextlib.AsyncExitStack()
        self._forwarder: Forwarder | None = None
        self._rejects: RejectSink | None = None
        # Positions already on the rejects queue: a retried batch must not reject them twice.
        self._dead_lettered: set[tuple[str, int]] = set()
        self._dead_order: deque[tuple[str, int]] = deque()
        # Device -> (monotonic time, skew) of its last clock_skew log line.
        self._skew_logged: dict[str, tuple[float, int]] = {}
        self.silence = SilenceWatch(
            settings.silent_train_after_s * 1000,
            settings.silent_train_memory_s * 1000,
            settings.dedup_max_counters,
        )
        self._silent_count = 0

    async def start(self, shard_id: str) -> None:
        await super().start(shard_id)
        s = self.settings
        clients = self.clients
        kinesis = await self._stack.enter_async_context(clients.create("kinesis"))
        sqs = await self._stack.enter_async_context(clients.create("sqs"))
        s3 = await self._stack.enter_async_context(clients.create("s3"))
        queue_url = (await sqs.get_queue_url(QueueName=s.queue_rejects))["QueueUrl"]
        self._forwarder = Forwarder(
            kinesis,
            s.stream_telemetry,
            max_attempts=s.forward_max_attempts,
            backoff_s=s.forward_backoff_s,
        )
        self._rejects = RejectSink(
            sqs,
            s3,
            queue_url=queue_url,
            bucket=s.bucket_state,
            events=KinesisPublisher(kinesis, s.stream_events),
        )
        if self.recover and shard_id:
            since = await recovery_start(
                kinesis,
                stream=s.stream_raw,
                shard_id=shard_id,
                checkpoint=self.checkpoint_sequence,
                max_s=s.dedup_recovery_max_s,
            )
            await recover(
                kinesis,
                telemetry=s.stream_telemetry,
                shard_id=shard_id,
                since=since,
                dedup=self.pipeline.dedup,
                digest=self.pipeline.express.digest,
            )

    async def stop(self) -> None:
        await self._stack.aclose()

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        assert self._forwarder is not None, "start() first"
        now_ms = int(time.time() * 1000)
        normaliser, dedup = self.pipeline.normaliser, self.pipeline.dedup
        normaliser.uncatalogued = 0
        normaliser.skewed_frames, normaliser.skewed = 0, {}
        beyond, evicted = dedup.beyond_window, dedup.evicted
        plan = self.pipeline.plan(records, now_ms)
        result: BatchResult[Any] = BatchResult()
        transient: dict[int, str] = {}
        heard = self.silence.heard
        for o in plan.outgoing:
            heard(o.train, records[o.origin].arrival_ms or now_ms)
        if plan.outgoing:
            entries = [(o.data, o.train) for o in plan.outgoing]
            failed, error = await self._forwarder.put(entries)
            for i, out in enumerate(plan.outgoing):
                if i in failed:
                    transient[out.origin] = error
                else:
                    self.pipeline.dedup.mark(out.train, out.epoch, out.seq, out.digest)
            self._count("RecordsForwarded", len(plan.outgoing) - len(failed))
        for origin in sorted(transient):
            record = records[origin]
            exc = TransientError(f"PutRecords failed after retries: {transient[origin]}")
            result.failed.append(
                RecordFailure(record, FailureKind.TRANSIENT, f"TransientError: {exc}", exc)
            )
        for rejected in plan.rejected:
            key = (rejected.record.sequence_number, rejected.record.sub_sequence_number)
            if key in self._dead_lettered:
                continue
            exc2 = RejectedRecordError(rejected.rejection)
            result.failed.append(
                RecordFailure(rejected.record, FailureKind.POISON, str(exc2), exc2)
            )
        result.succeeded.extend((r, None) for i, r in enumerate(records) if i not in transient)
        self._count("UserRecordsIn", plan.user_records)
        self._count("DuplicatesDropped", plan.duplicates)
        self._count("SeqConflicts", plan.conflicts)
        self._count("UncataloguedReadings", normaliser.uncatalogued)
        if self.metrics is not None:
            # With every batch, zeros included (alarmed): a quiet shard's empty batches too,
            # which is how trains that all went silent are still counted.
            self.metrics.add(mn.FRAMES_CLOCK_SKEWED, normaliser.skewed_frames)
        silent = self.silence.silent(now_ms)
        if self.metrics is not None:
            self.metrics.add(mn.SILENT_TRAINS, len(silent))
        if len(silent) != self._silent_count:
            # Which trains (the metric has only their number), each time the number changes.
            logger.warning("silent_trains", count=len(silent), trains=silent[:20],
                           after_s=self.settings.silent_train_after_s)
            self._silent_count = len(silent)
        self._report_skew(normaliser.skewed)
        # Frames older than the dedup window (let through unjudged) and trains forgotten (this
        # batch, marks included).
        self._count("DedupBeyondWindow", dedup.beyond_window - beyond)
        self._count("DedupTrainsEvicted", dedup.evicted - evicted)
        self._count("BytesIn", plan.bytes_in, "Bytes")
        if plan.duplicates:
            logger.info("duplicates_dropped", count=plan.duplicates)
        return result

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        assert self._rejects is not None, "start() first"
        rejections = [_rejection_of(f) for f in failures]
        rejections = [
            r
            for r in rejections
            if (r.source.sequence_number, r.source.sub_sequence_number) not in self._dead_lettered
        ]
        sent: list[Rejection] = []
        try:
            await self._rejects.send(rejections, int(time.time() * 1000), sent)
        finally:
            for r in sent:
                self._remember((r.source.sequence_number, r.source.sub_sequence_number))
                self._count(f"Rejected.{r.reason.value}", 1)
                logger.warning(
                    "record_rejected",
                    reason=r.reason.value,
                    detail=r.detail[:300],
                    device=r.device,
                    sequence=r.source.sequence_number,
                    sub_sequence=r.source.sub_sequence_number,
                )
            self._count("RecordsRejected", len(sent))

    def _report_skew(self, skewed: dict[str, int]) -> None:
        """Each skewed device's latest skew as a `ClockSkew` value (devices by name in the
        metadata), and a `clock_skew` warning per device at most every SKEW_LOG_EVERY_S unless
        its skew moves by more than the tolerance."""
        if not skewed:
            return
        if self.metrics is not None:
            for skew in skewed.values():
                self.metrics.add(mn.CLOCK_SKEW, skew, "Milliseconds")
            self.metrics.add_metadata("clock_skew_ms", dict(skewed))
        now = time.monotonic()
        tolerance = self.settings.clock_skew_tolerance_ms
        for device, skew in skewed.items():
            last = self._skew_logged.get(device)
            recent = last is not None and now - last[0] < SKEW_LOG_EVERY_S
            if recent and last is not None and abs(skew - last[1]) <= tolerance:
                continue
            logger.warning("clock_skew", device=device, skew_ms=skew, tolerance_ms=tolerance)
            self._skew_logged.pop(device, None)
            self._skew_logged[device] = (now, skew)
            if len(self._skew_logged) > self.settings.dedup_max_counters:
                del self._skew_logged[next(iter(self._skew_logged))]  # least recently logged

    def _remember(self, key: tuple[str, int]) -> None:
        self._dead_lettered.add(key)
        self._dead_order.append(key)
        if len(self._dead_order) > 10_000:
            self._dead_lettered.discard(self._dead_order.popleft())

    def _count(self, name: str, value: float, unit: Any = "Count") -> None:
        if self.metrics is not None and value:
            self.metrics.add(name, value, unit)


def _rejection_of(failure: RecordFailure) -> Rejection:
    exc = failure.exception
    if isinstance(exc, RejectedRecordError):
        return exc.rejection
    # Not raised by this handler's pipeline (which turns everything into rejections): keep it anyway.
    record = failure.record
    return Rejection(
        RejectReason.SCHEMA_VIOLATION,
        failure.error,
        record.data,
        RawKind.RECORD,
        SourcePosition(
            stream=record.stream,
            shard_id=record.shard_id,
            sequence_number=record.sequence_number,
            sub_sequence_number=record.sub_sequence_number,
        ),
        partition_key=record.partition_key,
    )
