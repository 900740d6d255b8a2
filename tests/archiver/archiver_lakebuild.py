"""Write records into a test lake through the real handler and KCL adapter."""

from __future__ import annotations

from archiver_kclfake import Checkpointer, Input, kcl_records

from railpulse_archiver.handler import ArchiverHandler
from railpulse_archiver.settings import ArchiverSettings
from railpulse_shared.batch import StreamRecord
from railpulse_shared.kcl import ShardProcessor


def archive(settings: ArchiverSettings, records: list[StreamRecord], stream: str) -> Checkpointer:
    """One worker takes the shard, processes everything in batches of 500, and sees it end."""
    checkpointer = Checkpointer()
    processor = ShardProcessor(ArchiverHandler(settings), stream=stream, checkpoint_interval_s=0)
    processor.initialize(Input(shard_id=records[0].shard_id))
    for start in range(0, len(records), 500):
        chunk = kcl_records(records[start : start + 500])
        processor.process_records(Input(records=chunk, checkpointer=checkpointer))
    processor.shard_ended(Input(checkpointer=checkpointer))
    return checkpointer
