"""Dead letters → the SQS `rejects` queue (and S3 for what SQS cannot carry), for every consumer.

The message body is the `rejected.v1` contract (reason, detail, raw bytes, source stream, shard and
sequence). SQS takes at most 256 KiB per message, so a body that would not fit puts the raw bytes
in S3 (`s3://<bucket_state>/rejects/[<consumer>/]<shard>/<seq>-<sub>`) and points at them
(`raw_s3_uri`). Message attributes carry what a redrive needs to rebuild the rule envelope (topic,
principal, received_ms, partition key), which consumer dead-lettered the record, and what `raw`
is: the device payload, the whole `telemetry-raw` record, or a record of another stream
(`source.stream`) that a consumer (detector, archiver) could not handle.

Ingest rejects what breaks a contract; `consumer_rejection` turns a consumer's `RecordFailure`
into a rejection of the same shape, so `railpulse rejects list/redrive` shows every dead letter.

**The lake keeps them.** SQS keeps a message at most 14 days, so the sink also puts each
`rejected.v1` on the Kinesis `events` stream (given `events`), which the archiver writes into the
lake's `rejects` table. Rules:

- *Both must succeed.* SQS goes first (the queue is what operators redrive from), then `events`;
  `send` returns only when every rejection is on both, else raises `TransientError` so the
  consumer retries (its checkpoint never passes a record whose reject is not in the lake, or it
  would be lost when SQS lets go). A retry does not queue again what is already queued: the sink
  remembers the rejections queued but not yet published. Publishing is at least once: the lake's
  rows are unique by (`consumer`, `record_*` position), not by row.
- *The same body.* The `events` record is the SQS message body, so a payload too large for SQS
  is in the lake as `raw_s3_uri` (the state bucket keeps current objects for good) with
  `raw_size`, and every other one with its bytes.
- *No loop.* A rejection whose raw bytes are themselves a `rejected.v1` (a consumer of `events`,
  i.e. the archiver, could not store one) goes to SQS only: a reject is re-published at most once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from railpulse_shared import codec
from railpulse_shared.batch import RecordFailure
from railpulse_shared.contracts import RejectedRecord, RejectReason, SourcePosition
from railpulse_shared.contracts.telemetry import MAX_EPOCH_MS
from railpulse_shared.errors import (
    HandlerError,
    MalformedPayloadError,
    PermanentError,
    TransientError,
    UnstorableError,
)
from railpulse_shared.publish import KinesisPublisher

__all__ = [
    "MAX_SQS_BYTES",
    "RawKind",
    "RejectSink",
    "Rejection",
    "attributes_of",
    "consumer_rejection",
    "is_rejected_event",
    "reason_of",
]

logger = structlog.get_logger()

MAX_SQS_BYTES = 256 * 1024
_ATTRIBUTE_ALLOWANCE = 4 * 1024
"""Room kept for the message attributes, which count towards SQS's size limit."""


class RawKind(StrEnum):
    PAYLOAD = "payload"
    """`raw` is what the device published; the envelope fields are in the attributes."""
    RECORD = "record"
    """`raw` is the whole `telemetry-raw` record (its envelope could not be read)."""
    EVENT = "event"
    """`raw` is a record of `source.stream` that one of its consumers dead-lettered."""


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    raw: bytes
    raw_kind: RawKind
    source: SourcePosition
    device: str | None = None
    topic: str = ""
    received_ms: int = 0
    partition_key: str = ""
    consumer: str = ""
    """The consumer that dead-lettered the record (empty: ingest rejected it)."""


# What SQS accepts in a message attribute (XML 1.0 characters); anything else fails the send.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def attributes_of(rejection: Rejection) -> dict[str, dict[str, str]]:
    attrs = {
        "reason": rejection.reason.value,
        "raw_kind": rejection.raw_kind.value,
        "topic": rejection.topic,
        "principal": rejection.device or "",
        "received_ms": str(rejection.received_ms),
        "partition_key": rejection.partition_key,
        "consumer": rejection.consumer,
    }
    # SQS refuses empty attribute values, and characters outside XML's (a hostile partition key
    # must not make the dead letter itself undeliverable).
    return {
        k: {"DataType": "String", "StringValue": _NOT_XML.sub("\ufffd", v[:1024])}
        for k, v in attrs.items()
        if v
    }


def reason_of(exc: BaseException | None) -> RejectReason:
    """The reason a consumer's poison record is dead-lettered with."""
    if isinstance(exc, HandlerError):
        return RejectReason.HANDLER_ERROR
    if isinstance(exc, UnstorableError):
        return RejectReason.UNSTORABLE
    if isinstance(exc, MalformedPayloadError):
        return RejectReason.MALFORMED_JSON
    return RejectReason.SCHEMA_VIOLATION


def consumer_rejection(
    failure: RecordFailure, consumer: str, *, stream: str = "", shard_id: str = ""
) -> Rejection:
    """A consumer's poison record as a rejection: its error, raw bytes and stream position
    (`stream` and `shard_id` stand in for a record that does not carry them)."""
    record = failure.record
    return Rejection(
        reason=reason_of(failure.exception),
        detail=f"{consumer}: {failure.error}",
        raw=record.data,
        raw_kind=RawKind.EVENT,
        source=SourcePosition(
            stream=record.stream or stream,
            shard_id=record.shard_id or shard_id,
            sequence_number=record.sequence_number,
            sub_sequence_number=record.sub_sequence_number,
        ),
        partition_key=record.partition_key,
        consumer=consumer,
    )


class _Kind(msgspec.Struct):
    kind: str = ""


_kind = msgspec.json.Decoder(_Kind)
_REJECTED_KIND = RejectedRecord.__struct_config__.tag


def is_rejected_event(raw: bytes) -> bool:
    """True if `raw` is (or claims to be) a `rejected.v1` event: a dead letter of a dead letter."""
    try:
        return _kind.decode(raw).kind == _REJECTED_KIND
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False


def _identity(rejection: Rejection) -> tuple[str, str, str, str, int]:
    src = rejection.source
    return (
        rejection.consumer,
        src.stream,
        src.shard_id,
        src.sequence_number,
        src.sub_sequence_number,
    )


class RejectSink:
    def __init__(
        self,
        sqs: Any,
        s3: Any,
        *,
        queue_url: str,
        bucket: str,
        events: KinesisPublisher | None = None,
    ) -> None:
        self.sqs = sqs
        self.s3 = s3
        self.queue_url = queue_url
        self.bucket = bucket
        self.events = events
        """Where each `rejected.v1` is also put for the lake (None: SQS only, as in tests)."""
        self._unpublished: dict[tuple[str, str, str, str, int], str] = {}
        """Rejections on the queue, not yet on `events`: identity -> the body queued."""

    async def send(
        self, rejections: Sequence[Rejection], now_ms: int, sent: list[Rejection] | None = None
    ) -> None:
        """Send every rejection (to the queue, then to `events`), or raise `TransientError`;
        `sent` collects what went through both, so a retry sends only the rest (no duplicate
        rejects)."""
        fresh = [r for r in rejections if _identity(r) not in self._unpublished]
        bodies = [await self._body(r, now_ms) for r in fresh]
        queued: list[int] = []
        try:
            batch: list[int] = []
            size = 0
            for i, body in enumerate(bodies):
                if batch and (
                    len(batch) == 10 or size + len(body) > MAX_SQS_BYTES - _ATTRIBUTE_ALLOWANCE
                ):
                    await self._send_batch(fresh, bodies, batch, queued)
                    batch, size = [], 0
                batch.append(i)
                size += len(body)
            if batch:
                await self._send_batch(fresh, bodies, batch, queued)
        finally:
            for i in queued:
                self._unpublished[_identity(fresh[i])] = bodies[i]
        await self._publish(rejections, sent)

    async def _publish(self, rejections: Sequence[Rejection], sent: list[Rejection] | None) -> None:
        """Put the queued rejections of this call on `events` (those that may go there)."""
        todo = [r for r in rejections if _identity(r) in self._unpublished]
        archived = [r for r in todo if self.events is not None and self._archivable(r)]
        if archived:
            assert self.events is not None
            records = [
                (
                    r.source.shard_id or r.consumer or "rejects",
                    self._unpublished[_identity(r)].encode(),
                )
                for r in archived
            ]
            try:
                await self.events.put(records)
            except (TransientError, PermanentError) as exc:
                logger.warning("rejects_publish_failed", count=len(archived), error=str(exc))
                raise TransientError(
                    f"{len(archived)} rejects not put on {self.events.stream}: {exc}"
                ) from exc
        for r in todo:
            del self._unpublished[_identity(r)]
        if sent is not None:
            sent.extend(todo)

    def _archivable(self, rejection: Rejection) -> bool:
        # The loop guard: a dead letter of a dead letter stays on the queue.
        return not (rejection.raw_kind is RawKind.EVENT and is_rejected_event(rejection.raw))

    async def _body(self, rejection: Rejection, now_ms: int) -> str:
        record = RejectedRecord(
            reason=rejection.reason,
            detail=rejection.detail[:2048],
            raw=rejection.raw,
            source=rejection.source,
            rejected_ms=now_ms,
            device=rejection.device,
            raw_size=len(rejection.raw),
            consumer=rejection.consumer,
            raw_kind=rejection.raw_kind.value,
            topic=rejection.topic[:1024],
            # Out of the contract's range (a hostile envelope) it would make the lake's copy
            # undecodable; the attributes keep what arrived.
            received_ms=rejection.received_ms if 0 <= rejection.received_ms <= MAX_EPOCH_MS else 0,
        )
        body = codec.encode(record)
        if len(body) > MAX_SQS_BYTES - _ATTRIBUTE_ALLOWANCE:
            src = rejection.source
            where = f"{rejection.consumer}/{src.shard_id}" if rejection.consumer else src.shard_id
            key = f"rejects/{where}/{src.sequence_number}-{src.sub_sequence_number}"
            try:
                await self.s3.put_object(Bucket=self.bucket, Key=key, Body=rejection.raw)
            except (ClientError, BotoCoreError) as exc:
                raise TransientError(f"put s3://{self.bucket}/{key}: {exc}") from exc
            uri = f"s3://{self.bucket}/{key}"
            body = codec.encode(msgspec.structs.replace(record, raw=b"", raw_s3_uri=uri))
        return body.decode()

    async def _send_batch(
        self,
        rejections: Sequence[Rejection],
        bodies: list[str],
        batch: list[int],
        queued: list[int],
    ) -> None:
        pending = batch
        error = ""
        for attempt in range(4):
            if attempt:
                await asyncio.sleep(0.1 * 2**attempt)
            try:
                response = await self.sqs.send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(i),
                            "MessageBody": bodies[i],
                            "MessageAttributes": attributes_of(rejections[i]),
                        }
                        for i in pending
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("rejects_send_failed", attempt=attempt, error=error)
                continue
            failed = response.get("Failed") or []
            failed_ids = {int(f["Id"]) for f in failed}
            queued.extend(i for i in pending if i not in failed_ids)
            if not failed:
                return
            error = "; ".join(f"{f.get('Code')}: {f.get('Message', '')}" for f in failed)
            pending = sorted(failed_ids)
        raise TransientError(f"{len(pending)} rejects not sent to {self.queue_url}: {error}")
