"""One batch through decode → validate → normalise → de-duplicate → encode, with no I/O.

The result is a plan: the encoded frames to forward (with the record they came from), the records
to reject (with their reason and raw bytes) and the duplicates dropped. A frame whose identity
(train, epoch, seq) was accepted before with other content is a conflict: its record is rejected
as `seq_conflict` with both content digests (the record's other frames are still forwarded). The
handler executes the plan; the benchmark times it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import structlog

from railpulse_ingest._kpl import MAGIC
from railpulse_ingest.decode import deaggregate, decode_envelope, decode_payload
from railpulse_ingest.dedup import Deduplicator
from railpulse_ingest.errors import RejectError
from railpulse_ingest.express import Encoded, Express, encoded
from railpulse_ingest.normalise import Normaliser
from railpulse_ingest.reject import RawKind, Rejection
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import RejectReason, RuleEnvelope, SourcePosition

__all__ = ["Outgoing", "Pipeline", "Plan", "Rejected", "conflict_detail"]

logger = structlog.get_logger()


class Outgoing(msgspec.Struct, gc=False):
    """One frame to forward (a Struct, not a dataclass: one is made per frame, in C)."""

    data: bytes
    train: str
    epoch: int
    seq: int
    digest: int
    """Its content digest (see `dedup`)."""
    origin: int
    """Index of the stream record (in the batch) this frame came from."""


@dataclass(slots=True)
class Rejected:
    origin: int
    record: StreamRecord
    """The (de-aggregated) record that was rejected: its sub-sequence number is its position."""
    rejection: Rejection


@dataclass(slots=True)
class Plan:
    outgoing: list[Outgoing] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: int = 0
    conflicts: int = 0
    """Frames whose identity was accepted before with other content (their records rejected)."""
    user_records: int = 0
    """Records after KPL de-aggregation."""
    accepted_records: int = 0
    """User records that became frames (forwarded or duplicates)."""
    bytes_in: int = 0


class Pipeline:
    def __init__(
        self, normaliser: Normaliser, dedup: Deduplicator, *, max_payload_bytes: int
    ) -> None:
        self.normaliser = normaliser
        self.express = Express(normaliser)
        self.dedup = dedup
        self.max_payload_bytes = max_payload_bytes

    def plan(self, records: Sequence[StreamRecord], now_ms: int) -> Plan:
        plan = Plan()
        outgoing = plan.outgoing
        in_batch: dict[tuple[str, int, int], int] = {}  # identity -> digest, this batch
        previous = self.dedup.previous
        for origin, outer in enumerate(records):
            plan.bytes_in += len(outer.data)
            # Aggregated records are rare: test the magic bytes before any call.
            users = _user_records(outer) if outer.data.startswith(MAGIC) else (outer,)
            for record in users:
                plan.user_records += 1
                try:
                    envelope, frames = self._accept(record, now_ms)
                except _Rejected as exc:
                    plan.rejected.append(Rejected(origin, record, exc.rejection))
                    continue
                plan.accepted_records += 1
                conflicts: list[tuple[int, int, int, int]] = []
                for train, epoch, seq, digest, data in frames:
                    key = (train, epoch, seq)
                    before = in_batch.get(key) or previous(train, epoch, seq)
                    if not before:
                        in_batch[key] = digest
                        outgoing.append(Outgoing(data, train, epoch, seq, digest, origin))
                    elif before == digest:
                        plan.duplicates += 1
                    else:
                        conflicts.append((epoch, seq, before, digest))
                if conflicts:
                    plan.conflicts += len(conflicts)
                    rejection = _rejection(
                        record, envelope, RejectReason.SEQ_CONFLICT, conflict_detail(conflicts)
                    )
                    plan.rejected.append(Rejected(origin, record, rejection))
        return plan

    def _accept(self, record: StreamRecord, now_ms: int) -> tuple[RuleEnvelope, list[Encoded]]:
        envelope: RuleEnvelope | None = None
        try:
            envelope = decode_envelope(record.data)
            if len(envelope.payload) > self.max_payload_bytes:
                raise RejectError(
                    RejectReason.OVERSIZED,
                    f"payload of {len(envelope.payload)} bytes exceeds {self.max_payload_bytes}",
                )
            source = SourcePosition(
                stream=record.stream,
                shard_id=record.shard_id,
                sequence_number=record.sequence_number,
                sub_sequence_number=record.sub_sequence_number,
            )
            express = self.express.accept(envelope, source, now_ms)
            if express is not None:
                return envelope, express
            accepted = self.normaliser.accept(
                decode_payload(envelope.payload), envelope, source, now_ms
            )
            return envelope, [encoded(frame, self.express.digest) for frame in accepted]
        except RejectError as exc:
            raise _Rejected(_rejection(record, envelope, exc.reason, exc.detail)) from exc
        except Exception as exc:  # a bug must not lose the record: dead-letter it, loudly
            logger.exception("unexpected_error", sequence=record.sequence_number)
            detail = f"internal error: {type(exc).__name__}: {exc}"
            raise _Rejected(
                _rejection(record, envelope, RejectReason.SCHEMA_VIOLATION, detail)
            ) from exc


_MAX_CONFLICTS_TOLD = 8


def conflict_detail(conflicts: Sequence[tuple[int, int, int, int]]) -> str:
    """What a `seq_conflict` reject says: each (epoch, seq, accepted digest, this digest)."""
    told = "; ".join(
        f"seq {seq} epoch {epoch}: accepted content {before:08x}, this {digest:08x}"
        for epoch, seq, before, digest in conflicts[:_MAX_CONFLICTS_TOLD]
    )
    more = len(conflicts) - _MAX_CONFLICTS_TOLD
    return (
        f"{len(conflicts)} frame(s) already accepted with other content (32-bit digests), kept "
        f"here, not forwarded: {told}{f'; and {more} more' if more > 0 else ''}. A counter that "
        "started again needs a new epoch"
    )


class _Rejected(Exception):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection


def _user_records(record: StreamRecord) -> Sequence[StreamRecord]:
    parts = deaggregate(record.data)
    if parts is None:
        return [record]
    return [
        msgspec.structs.replace(record, data=data, partition_key=key, sub_sequence_number=i)
        for i, (key, data) in enumerate(parts)
    ]


def _rejection(
    record: StreamRecord, envelope: RuleEnvelope | None, reason: RejectReason, detail: str
) -> Rejection:
    source = SourcePosition(
        stream=record.stream,
        shard_id=record.shard_id,
        sequence_number=record.sequence_number,
        sub_sequence_number=record.sub_sequence_number,
    )
    if envelope is None:
        return Rejection(
            reason, detail, record.data, RawKind.RECORD, source, partition_key=record.partition_key
        )
    return Rejection(
        reason,
        detail,
        envelope.payload,
        RawKind.PAYLOAD,
        source,
        device=envelope.principal,
        topic=envelope.topic,
        received_ms=envelope.received_ms,
        partition_key=record.partition_key,
    )
