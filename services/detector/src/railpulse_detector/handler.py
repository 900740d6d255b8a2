"""One shard of Kinesis `telemetry`: accepted frames in → decide → anomalies out.

    consume (KCL batch) → decode AcceptedFrame → rules (limits, sensor faults) → emit
                                                                    (SQS alerts + Kinesis events)

Deciding is stateful and happens once per record: if emitting fails, the decided anomalies wait
in `_undelivered` and the retry only re-sends them, so a retry never advances a model twice.
A record that is not an accepted frame is a bug upstream: it goes to the rejects queue with its
bytes and the reason, like every other record the platform cannot use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import msgspec
import structlog

from railpulse_detector.emit import AnomalyEmitter
from railpulse_detector.rules import Rules, RuleSettings
from railpulse_detector.settings import DetectorSettings
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import BatchResult, FailureKind, RecordFailure, StreamRecord
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.contracts import (
    AcceptedFrame,
    Anomaly,
    RejectedRecord,
    RejectReason,
    SourcePosition,
)
from railpulse_shared.errors import ContractError, PermanentError, TransientError
from railpulse_shared.kcl import ShardHandler
from railpulse_shared.metrics import Metrics
from railpulse_shared.publish import KinesisPublisher, SqsPublisher

__all__ = ["DetectorHandler"]

logger = structlog.get_logger()


def _now_ms() -> int:
    return int(time.time() * 1000)


class DetectorHandler(ShardHandler):
    def __init__(self, settings: DetectorSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.rules = Rules(
            load_catalogue(settings.catalogue),
            RuleSettings(
                stuck_frames=settings.stuck_frames,
                dropout_frames=settings.dropout_frames,
                reassert_ms=settings.reassert_ms,
            ),
        )
        self._stack = AsyncExitStack()
        self._undelivered: dict[tuple[int, int], list[Anomaly]] = {}
        self.emitter: AnomalyEmitter | None = None
        self.rejects: SqsPublisher | None = None

    async def start(self, shard_id: str) -> None:
        await super().start(shard_id)
        clients = AwsClients(self.settings)
        sqs = await self._stack.enter_async_context(clients.create("sqs"))
        kinesis = await self._stack.enter_async_context(clients.create("kinesis"))
        self.emitter = AnomalyEmitter(
            await SqsPublisher.for_queue(sqs, self.settings.queue_alerts),
            KinesisPublisher(kinesis, self.settings.stream_events),
        )
        self.rejects = await SqsPublisher.for_queue(sqs, self.settings.queue_rejects)

    async def stop(self) -> None:
        await self._stack.aclose()

    def decide(self, frame: AcceptedFrame) -> list[Anomaly]:
        """Everything the detector concludes from one frame (stateful: call once per frame)."""
        detected = _now_ms()
        return [msgspec.structs.replace(a, detected_ms=detected) for a in self.rules.check(frame)]

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[list[Anomaly]]:
        result: BatchResult[list[Anomaly]] = BatchResult()
        decided: list[tuple[StreamRecord, list[Anomaly]]] = []
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
            anomalies = self.decide(event)
            self._undelivered[key] = anomalies
            decided.append((record, anomalies))
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
        if self.metrics is not None:
            self.metrics.add("FramesScored", len(decided))
            self.metrics.add("AnomaliesEmitted", len(anomalies))
            for anomaly in anomalies:
                latency = anomaly.detected_ms - (anomaly.received_ms or anomaly.ts_ms)
                self.metrics.add("DetectionLatency", latency, "Milliseconds")
        return result

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        assert self.rejects is not None, "start() opens the rejects queue"
        await self.rejects.send(
            [
                codec.encode(
                    RejectedRecord(
                        reason=RejectReason.SCHEMA_VIOLATION,
                        detail=f.error,
                        raw=f.record.data,
                        source=SourcePosition(
                            stream=self.settings.stream_telemetry,
                            shard_id=self.shard_id,
                            sequence_number=f.seq,
                            sub_sequence_number=f.sub_seq,
                        ),
                        rejected_ms=_now_ms(),
                        raw_size=len(f.record.data),
                    )
                ).decode()
                for f in failures
            ]
        )
