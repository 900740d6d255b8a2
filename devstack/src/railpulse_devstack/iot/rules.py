"""The topic rules → Kinesis `telemetry-raw`, run from the same SQL the CDK stack deploys.

The rules are `railpulse_shared.topic_rules.TOPIC_RULES`; each one's SQL is compiled by
`railpulse_devstack.iot.sql` (a rule the stand-in could not run exactly fails at start) and run
per message. The stand-in subscribes to every rule's FROM filter and its Basic Ingest form
`$aws/rules/<rule name>/<filter>`: as in IoT Core, a Basic Ingest message runs only the rule it
names, and `topic()` sees the topic without the prefix. `clientid()` is the publisher's client id,
which the broker stamps on every message (MQTT 5 user property `railpulse-client-id`) and pins to
the certificate's thing (see `railpulse_devstack.broker`). The rules write the shared contract
`RuleEnvelope` (JSON, base64 payload); ingest decodes it with `codec.decode_envelope`.

Records that arrive within `linger` (5 ms) of each other go out in one PutRecords call, through
the shared `KinesisPublisher.put_each`: one record never costs the others. A record Kinesis can
never take goes to the rejects queue with its reason and bytes (a `RejectedRecord`, as ingest
writes them, so `railpulse rejects list` shows it); records still failing after the publisher's
retries are tried again, in order, until they are written or the stand-in stops (then they too are
rejected, never dropped).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from railpulse_devstack.iot.sql import (
    CompiledRule,
    Message,
    Template,
    compile_sql,
    compile_template,
)
from railpulse_shared import codec
from railpulse_shared.contracts import RejectedRecord, RejectReason, SourcePosition
from railpulse_shared.publish import KINESIS_MAX_RECORD_BYTES, PutFailure
from railpulse_shared.topic_rules import TopicRuleSpec

__all__ = [
    "CLIENT_ID_PROPERTY",
    "KinesisRule",
    "RuleRecord",
    "Rules",
    "RunnableRule",
    "aws_sinks",
    "reject_body",
]

logger = structlog.get_logger()

CLIENT_ID_PROPERTY = "railpulse-client-id"
"""The MQTT 5 user property the broker stamps on every message: the publisher's client id."""
_BASIC_INGEST = "$aws/rules/"
_MAX_BATCH = 500
_MAX_BATCH_BYTES = 4 * 1024 * 1024
_SQS_MAX_BYTES = 256 * 1024
_REQUEUE_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class RunnableRule:
    spec: TopicRuleSpec
    sql: CompiledRule
    partition_key: Template


@dataclass(frozen=True, slots=True)
class RuleRecord:
    rule: str
    partition_key: str
    data: bytes


class Rules:
    """The compiled rules: which fire for a delivered topic, and what each writes."""

    def __init__(self, specs: Sequence[TopicRuleSpec]) -> None:
        self.rules = tuple(
            RunnableRule(s, compile_sql(s.sql), compile_template(s.partition_key)) for s in specs
        )
        self._by_name = {r.spec.name: r for r in self.rules}

    def subscriptions(self) -> tuple[str, ...]:
        out: list[str] = []
        for r in self.rules:
            out += [r.sql.topic_filter, f"{_BASIC_INGEST}{r.spec.name}/{r.sql.topic_filter}"]
        return tuple(out)

    def run(
        self, topic: str, payload: bytes, client_id: str | None, received_ms: int
    ) -> list[RuleRecord]:
        """The records every rule this message triggers writes (none for other topics)."""
        if topic.startswith(_BASIC_INGEST):
            name, _, rest = topic[len(_BASIC_INGEST) :].partition("/")
            named = self._by_name.get(name)
            fired = [named] if named is not None and named.sql.matches(rest) else []
            topic = rest
        else:
            fired = [r for r in self.rules if r.sql.matches(topic)]
        message = Message(topic, payload, client_id, received_ms)
        return [
            RuleRecord(r.spec.name, r.partition_key.render(message), r.sql.output(message))
            for r in fired
        ]


def reject_body(record: RuleRecord, failure: PutFailure, stream: str, now_ms: int) -> str:
    """The rejects-queue message for a record the rule could not put (as ingest writes them)."""
    oversized = len(record.data) + len(record.partition_key.encode()) > KINESIS_MAX_RECORD_BYTES
    detail = f"topic rule {record.rule} could not put the record on {stream}: {failure.error}"
    raw = record.data
    if len(raw) * 4 // 3 + 4096 > _SQS_MAX_BYTES:
        detail += f" (raw bytes left out: {len(raw)} bytes are more than an SQS message holds)"
        raw = b""
    return codec.encode(
        RejectedRecord(
            reason=RejectReason.OVERSIZED if oversized else RejectReason.BAD_ENVELOPE,
            detail=detail[:2048],
            raw=raw,
            source=SourcePosition(
                stream=stream, shard_id=f"iot-rule/{record.rule}", sequence_number=""
            ),
            rejected_ms=now_ms,
            device=record.partition_key or None,
            raw_size=len(record.data),
        )
    ).decode()


class Publisher(Protocol):
    def put_each(
        self, records: Sequence[tuple[str, bytes]]
    ) -> Awaitable[list[str | PutFailure]]: ...


class RejectSender(Protocol):
    def send(self, bodies: Sequence[str]) -> Awaitable[None]: ...


Sinks = tuple[Publisher, RejectSender]


class KinesisRule:
    """Runs the rules on delivered messages (any thread) and writes their records (own thread).

    `open_sinks` is awaited once on the rule thread's event loop: it returns the Kinesis publisher
    and the rejects sender (and may hold clients open until `close`)."""

    def __init__(
        self,
        rules: Rules,
        open_sinks: Callable[[], Coroutine[Any, Any, Sinks]],
        *,
        stream: str = "telemetry-raw",
        linger: float = 0.005,
        clock: Callable[[], float] = time.time,
        close_sinks: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.rules = rules
        self._open_sinks = open_sinks
        self._close_sinks = close_sinks
        self._stream = stream
        self._linger = linger
        self._clock = clock
        self._queue: queue.Queue[RuleRecord | None] = queue.Queue()
        self._retry: list[RuleRecord] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kinesis-rule", daemon=True)
        self.put_count = 0
        self.rejected_count = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout=30)

    def offer(self, topic: str, payload: bytes, client_id: str | None = None) -> bool:
        """Run the rules on one message; False if no rule took it."""
        records = self.rules.run(topic, payload, client_id, int(self._clock() * 1000))
        for record in records:
            self._queue.put(record)
        return bool(records)

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            while True:  # moto may still be starting: keep trying, the queue holds the records
                try:
                    kinesis, rejects = runner.run(self._open_sinks())
                    break
                except Exception as err:
                    logger.warning("rule.open_failed", error=repr(err))
                    if self._closing.wait(_REQUEUE_PAUSE_S):
                        logger.error("rule.closed_unopened", records=self._queue.qsize())
                        return
            try:
                stop = False
                while not stop or self._retry:
                    batch, stop = self._next_batch(stop)
                    if not batch:
                        continue
                    try:
                        runner.run(self._deliver(kinesis, rejects, batch, final=stop))
                    except Exception:  # keep the records; Kinesis or SQS will come back
                        logger.exception("rule.delivery_failed", records=len(batch))
                        self._retry = batch + self._retry
                        time.sleep(_REQUEUE_PAUSE_S)
            finally:
                if self._close_sinks is not None:
                    runner.run(self._close_sinks())

    def _next_batch(self, stop: bool) -> tuple[list[RuleRecord], bool]:
        batch, self._retry = self._retry, []
        size = sum(len(r.data) for r in batch)
        deadline = time.monotonic() + self._linger
        while not stop and len(batch) < _MAX_BATCH and size < _MAX_BATCH_BYTES:
            remaining = deadline - time.monotonic()
            try:
                if not batch:
                    item = self._queue.get()
                elif remaining > 0:
                    item = self._queue.get(timeout=remaining)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
            size += len(item.data)
        return batch, stop

    async def _deliver(
        self, kinesis: Publisher, rejects: RejectSender, batch: list[RuleRecord], *, final: bool
    ) -> None:
        outcomes = await kinesis.put_each([(r.partition_key, r.data) for r in batch])
        rejected: list[tuple[RuleRecord, PutFailure]] = []
        for record, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, str):
                self.put_count += 1
            elif outcome.permanent or final:
                rejected.append((record, outcome))
            else:
                self._retry.append(record)
        if self._retry:
            logger.warning("rule.put_retrying", records=len(self._retry), stream=self._stream)
            await asyncio.sleep(_REQUEUE_PAUSE_S)
        if rejected:
            now_ms = int(self._clock() * 1000)
            try:
                await rejects.send([reject_body(r, f, self._stream, now_ms) for r, f in rejected])
            except Exception:
                logger.exception("rule.reject_failed", records=len(rejected))
                self._retry.extend(r for r, _ in rejected)
                return
            self.rejected_count += len(rejected)
            for record, failure in rejected:
                logger.error(
                    "rule.record_rejected",
                    rule=record.rule,
                    device=record.partition_key,
                    bytes=len(record.data),
                    error=failure.error,
                )


def aws_sinks(
    clients: Any, stream: str, rejects_queue: str
) -> tuple[Callable[[], Coroutine[Any, Any, Sinks]], Callable[[], Coroutine[Any, Any, None]]]:
    """Open/close for the shared publishers over aiobotocore clients (`railpulse_shared.aws`)."""
    from contextlib import AsyncExitStack

    from railpulse_shared.publish import KinesisPublisher, SqsPublisher

    stack = AsyncExitStack()

    async def open_sinks() -> Sinks:
        kinesis = await stack.enter_async_context(clients.create("kinesis"))
        sqs = await stack.enter_async_context(clients.create("sqs"))
        return KinesisPublisher(kinesis, stream), await SqsPublisher.for_queue(sqs, rejects_queue)

    return open_sinks, stack.aclose
