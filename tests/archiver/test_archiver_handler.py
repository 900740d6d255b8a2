"""Handler edges: poison records are dead-lettered and passed; a lost lease flushes nothing."""

from __future__ import annotations

import boto3
import msgspec
from archiver_kclfake import Checkpointer, Input, kcl_records

from railpulse_archiver.handler import ArchiverHandler
from railpulse_archiver.main import APPLICATIONS
from railpulse_archiver.processor import ArchiverProcessor, make_processor
from railpulse_archiver.settings import ArchiverSettings
from railpulse_archiver.simulate import fleet_records, train_channels
from railpulse_shared import codec
from railpulse_shared.batch import StreamRecord
from railpulse_shared.contracts import RejectedRecord
from railpulse_shared.metrics import Metrics

START_MS = 1_780_000_000_000


def objects(settings: ArchiverSettings) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    listing = s3.list_objects_v2(Bucket=settings.bucket_lake, Prefix="telemetry/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_poison_is_dead_lettered_and_checkpointed_past(settings: ArchiverSettings) -> None:
    frames = list(fleet_records(trains=1, start_ms=START_MS, duration_s=60, period_s=10, shards=1))
    bad = StreamRecord(
        data=b'{"kind":"accepted.v1","train":"train-001"',  # truncated JSON
        sequence_number=str(int(frames[-1].sequence_number) + 1),
        shard_id=frames[0].shard_id,
    )
    checkpointer = Checkpointer()
    eager = msgspec.structs.replace(settings, buffer_max_age_s=0)
    processor = ArchiverProcessor(
        ArchiverHandler(eager), stream="telemetry", checkpoint_interval_s=0
    )
    processor.initialize(Input(shard_id=bad.shard_id))
    processor.process_records(Input(records=kcl_records([*frames, bad]), checkpointer=checkpointer))
    processor.process_records(Input(records=[], checkpointer=checkpointer))  # a quiet shard
    assert checkpointer.last == (bad.sequence_number, 0)

    sqs = boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=settings.queue_rejects)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    reject = codec.decode_event(messages[0]["Body"].encode())
    assert isinstance(reject, RejectedRecord)
    assert reject.raw == bad.data and reject.source.sequence_number == bad.sequence_number
    assert len(objects(settings)) == 1


def test_lost_lease_drops_the_buffer(settings: ArchiverSettings) -> None:
    frames = list(fleet_records(trains=2, start_ms=START_MS, duration_s=600, period_s=10, shards=1))
    checkpointer = Checkpointer()
    processor = ArchiverProcessor(
        ArchiverHandler(settings), stream="telemetry", checkpoint_interval_s=0
    )
    processor.initialize(Input(shard_id=frames[0].shard_id))
    processor.process_records(Input(records=kcl_records(frames), checkpointer=checkpointer))
    processor.lease_lost(Input())
    assert objects(settings) == [] and checkpointer.last is None


class ListSink:
    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []

    def write(self, line: bytes) -> None:
        self.lines.append(msgspec.json.decode(line))


def test_one_processor_module_serves_both_streams(settings: ArchiverSettings) -> None:
    events = make_processor(msgspec.structs.replace(settings, archiver_stream="events"))
    telemetry = make_processor(settings)
    assert isinstance(events, ArchiverProcessor) and events.stream == settings.stream_events
    assert telemetry.stream == settings.stream_telemetry
    assert set(APPLICATIONS.values()) == {
        "railpulse-archiver-telemetry",
        "railpulse-archiver-events",
    }


def test_flushes_are_counted_as_metrics(settings: ArchiverSettings) -> None:
    frames = list(fleet_records(trains=1, start_ms=START_MS, duration_s=60, period_s=10, shards=1))
    sink = ListSink()
    metrics = Metrics("railpulse", {"service": "archiver", "stream": "telemetry"}, sink)
    eager = msgspec.structs.replace(settings, buffer_max_age_s=0)
    processor = ArchiverProcessor(
        ArchiverHandler(eager, metrics=metrics),
        stream="telemetry",
        metrics=metrics,
        checkpoint_interval_s=0,
    )
    processor.initialize(Input(shard_id=frames[0].shard_id))
    processor.process_records(Input(records=kcl_records(frames), checkpointer=Checkpointer()))
    written = [line for line in sink.lines if "RowsWritten" in line]
    assert written and written[0]["RowsWritten"] == 6 * len(train_channels())
