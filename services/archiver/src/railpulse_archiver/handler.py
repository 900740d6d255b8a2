"""The archiver's `ShardHandler`: a `ShardArchive` per shard, behind the shared KCL adapter.

The adapter checkpoints at `durable_position`, which never passes a buffered record: a crash loses
only what the KCL will deliver again. A flush that keeps failing ends the process (SystemExit) so
the KCL restarts the shard from its last checkpoint; nothing is dropped or acknowledged early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog

from railpulse_archiver.archive import BufferHints, FlushStats, ShardArchive
from railpulse_archiver.catalog import GlueCatalog
from railpulse_archiver.errors import ArchiverError
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.store import ObjectStore, S3Store
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import BatchResult, RecordFailure, StreamRecord
from railpulse_shared.kcl import Position, ShardHandler
from railpulse_shared.metrics import Metrics
from railpulse_shared.publish import KinesisPublisher
from railpulse_shared.rejects import RejectSink, consumer_rejection

__all__ = ["ArchiverHandler", "stream_name"]

logger = structlog.get_logger()


def stream_name(settings: ArchiverSettings) -> str:
    if settings.archiver_stream == "events":
        return settings.stream_events
    return settings.stream_telemetry


class ArchiverHandler(ShardHandler):
    def __init__(
        self,
        settings: ArchiverSettings,
        *,
        clients: AwsClients | None = None,
        store_factory: Callable[[Any, str], ObjectStore] = S3Store,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream_name(settings)
        self.clients = clients or AwsClients(settings)
        self._store_factory = store_factory
        self._stack = AsyncExitStack()
        self._rejects: RejectSink | None = None
        self._archive: ShardArchive | None = None
        self._discard = False
        self.metrics = metrics
        self._reported = FlushStats()

    @property
    def archive(self) -> ShardArchive:
        if self._archive is None:
            raise RuntimeError("handler not started")
        return self._archive

    async def start(self, shard_id: str) -> None:
        await super().start(shard_id)
        s3 = await self._stack.enter_async_context(self.clients.create("s3"))
        glue = await self._stack.enter_async_context(self.clients.create("glue"))
        sqs = await self._stack.enter_async_context(self.clients.create("sqs"))
        kinesis = await self._stack.enter_async_context(self.clients.create("kinesis"))
        self._rejects = RejectSink(
            sqs,
            s3,
            queue_url=(await sqs.get_queue_url(QueueName=self.settings.queue_rejects))["QueueUrl"],
            bucket=self.settings.bucket_state,
            # Its own dead letters reach the lake through `events` too; one of a `rejected.v1`
            # it could not store stays on the queue (the sink's loop guard).
            events=KinesisPublisher(kinesis, self.settings.stream_events),
        )
        catalog = GlueCatalog(glue, self.settings.glue_database, self.settings.bucket_lake)
        self._archive = ShardArchive(
            self._store_factory(s3, self.settings.bucket_lake),
            stream=self.stream,
            shard=shard_id,
            catalog=catalog,
            hints=BufferHints(
                max_records=self.settings.buffer_max_records,
                max_bytes=self.settings.buffer_max_bytes,
                max_age_s=self.settings.buffer_max_age_s,
            ),
            retry_s=self.settings.flush_retry_s,
            reject=self.dead_letter,
        )
        await self._guard(self._archive.open())
        await self._guard(catalog.ensure_tables())

    async def process(self, records: Sequence[StreamRecord]) -> BatchResult[Any]:
        result: BatchResult[Any] = await self._guard(self.archive.offer(records))
        self._report()
        return result

    async def flush(self) -> None:
        if self._archive is not None and not self._discard:
            await self._guard(self._archive.flush())
            self._report()

    def _report(self) -> None:
        """Flush counters as metrics (the adapter writes them out after each batch)."""
        if self.metrics is None or self._archive is None:
            return
        now, before = self._archive.stats, self._reported
        if now.flushes == before.flushes:
            return
        self.metrics.add("Flushes", now.flushes - before.flushes)
        self.metrics.add("ObjectsWritten", now.objects - before.objects)
        self.metrics.add("RowsWritten", now.rows - before.rows)
        self.metrics.add("ParquetBytes", now.bytes_out - before.bytes_out, "Bytes")
        self.metrics.add("BufferedRecords", self._archive.buffered)
        if now.unstorable > before.unstorable:
            self.metrics.add("RecordsUnstorable", now.unstorable - before.unstorable)
        self._reported = FlushStats(
            now.flushes, now.objects, now.rows, now.bytes_in, now.bytes_out, now.unstorable
        )

    def discard(self) -> None:
        """Drop the buffer instead of flushing it: another worker owns the shard now.

        Flushing after the lease is lost could race the new owner, which replays the same records
        from the last checkpoint and may cut them at other boundaries. Dropping loses nothing: the
        checkpoint never passed these records.
        """
        self._discard = True

    def durable_position(self, processed: Position | None) -> Position | None:
        return self._archive.durable_position() if self._archive else None

    async def dead_letter(self, failures: Sequence[RecordFailure]) -> None:
        """Park records on the rejects queue with their reason and raw bytes: undecodable ones,
        ones the lake cannot hold (before their flush commits), ones the handler raised for."""
        assert self._rejects is not None, "start() opens the rejects queue"
        rejections = [consumer_rejection(f, self.settings.service) for f in failures]
        await self._rejects.send(rejections, int(time.time() * 1000))

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _guard(self, work: Any) -> Any:
        try:
            return await work
        except ArchiverError:
            # Retries are exhausted (or the manifest is unusable): leave without checkpointing,
            # the KCL restarts the shard from the last durable checkpoint.
            logger.exception("archiver_failed")
            raise SystemExit(1) from None
