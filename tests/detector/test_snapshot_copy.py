"""The copy a snapshot is written from (issue 18): what the models held when it was taken, byte
for byte, whatever the models do afterwards; a copy into an earlier copy's arrays is the same."""

from __future__ import annotations

from structlog.testing import capture_logs

from railpulse_detector.handler import DetectorHandler
from railpulse_detector.model import ModelBank
from railpulse_detector.settings import DetectorSettings
from railpulse_detector.snapshot_writer import detached
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.batch import StreamRecord
from railpulse_shared.catalogue import load_catalogue
from railpulse_shared.config import CommonSettings
from railpulse_shared.contracts import AcceptedFrame, Reading


def frames(seqs: range, trains: int = 3) -> list[AcceptedFrame]:
    return [
        AcceptedFrame(
            train=f"train-{t}",
            seq=seq,
            ts_ms=1_764_000_000_000 + seq * 1000,
            readings={f"bearing_temp_{i}": Reading(value=40.0 + i + (seq * t % 5) * 0.3)
                      for i in range(1, 9)},
        )
        for seq in seqs
        for t in range(trains)
    ]


def test_a_detached_copy_encodes_what_the_models_held_when_it_was_taken() -> None:
    bank = ModelBank(load_catalogue())
    bank.score(frames(range(1, 40)))
    expected = bank.dumps()
    copy = detached(bank)
    bank.score(frames(range(40, 60)))  # the models move on while the copy is written
    assert copy.dumps() == expected != bank.dumps()

    expected = bank.dumps()
    again = detached(bank, reuse=copy)  # into the written copy's arrays
    bank.score(frames(range(60, 70), trains=4))  # and a new train: the fleet grows
    assert again.dumps() == expected
    grown = detached(bank, reuse=again)  # shapes differ now: fresh arrays where they must
    assert grown.dumps() == bank.dumps()


async def test_a_snapshot_that_fails_to_land_holds_the_checkpoint_and_is_tried_again(
    aws: CommonSettings,
) -> None:
    """The upload fails (no such bucket) on the writer's thread: the handler learns it at its
    next look, the checkpoint stays where the last landed snapshot was, the models count as
    unsaved, and the next snapshot (once the bucket exists) lands and moves it on."""
    settings = DetectorSettings(
        aws_endpoint_url=aws.aws_endpoint_url,
        queue_alerts="alerts-sf",
        queue_rejects="rejects-sf",
        stream_events="events-sf",
        bucket_state="state-sf",
        snapshot_interval_s=3600.0,
        snapshot_first_s=3600.0,
    )
    clients = AwsClients(settings)
    async with clients.create("sqs") as sqs, clients.create("kinesis") as kinesis:
        for queue in (settings.queue_alerts, settings.queue_rejects):
            await sqs.create_queue(QueueName=queue)
        await kinesis.create_stream(StreamName=settings.stream_events, ShardCount=1)
    handler = DetectorHandler(settings)
    await handler.start("shardId-000000000012")
    try:
        await handler.process(records(range(1, 20)))
        with capture_logs() as logs:
            await handler.flush()  # no bucket: the upload fails
        assert "model_snapshot_failed" in {log["event"] for log in logs}
        assert handler.durable_position(("1019", 0)) is None
        async with clients.create("s3") as s3:
            await s3.create_bucket(Bucket=settings.bucket_state)
        await handler.flush()  # still unsaved: written now
        assert handler.durable_position(("1019", 0)) == ("1019", 0)
    finally:
        await handler.stop()


def records(seqs: range) -> list[StreamRecord]:
    return [
        StreamRecord(data=codec.encode(f), sequence_number=str(1000 + f.seq), partition_key=f.train)
        for f in frames(seqs, trains=1)
    ]
