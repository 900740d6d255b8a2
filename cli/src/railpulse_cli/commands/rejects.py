"""`railpulse rejects`: what ingest and the consumers dead-lettered, by reason, and re-driving it.

    railpulse rejects list [--reason R] [--samples N] [--json]
    railpulse rejects redrive --reason R [--limit N] [--dry-run]

`list` reads the queues without consuming them (every message it saw is made visible again).
`redrive` rebuilds each chosen record (the rule envelope around the device payload, from the
message attributes; raw bytes from S3 when SQS could not carry them), puts it back on
`telemetry-raw`, and deletes the message only once the put succeeded. What a consumer (detector,
archiver) dead-lettered goes back on the stream it was read from (`source.stream`), where every
consumer of that stream reads it again.

Both read `rejects` and then its dead-letter queue `rejects-dlq`: SQS has no peek, so every
listing counts as a receive, and after the queue's `maxReceiveCount` receives a reject moves to
`rejects-dlq`. It is still a reject, and still listed and re-driven from there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from railpulse_cli.target import add_target_argument, resolve_env
from railpulse_shared import codec
from railpulse_shared.aws import AwsClients
from railpulse_shared.config import CommonSettings, load_settings
from railpulse_shared.contracts import RejectedRecord, RejectReason, RuleEnvelope
from railpulse_shared.errors import ContractError
from railpulse_shared.rejects import RawKind

__all__ = ["list_rejects", "redrive", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rejects",
        help="list dead-lettered records by reason; re-drive chosen ones",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="rejects_command", metavar="ACTION", required=True)
    reasons = [r.value for r in RejectReason]
    listing = sub.add_parser("list", help="counts and samples by reason (does not consume)")
    listing.add_argument("--reason", choices=reasons)
    listing.add_argument("--samples", type=int, default=3, help="samples per reason")
    listing.add_argument("--max", type=int, default=10_000, help="messages to look at, at most")
    listing.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_target_argument(listing)
    listing.set_defaults(func=_run_list)
    again = sub.add_parser("redrive", help="re-publish rejects of one reason where they came from")
    again.add_argument("--reason", choices=reasons, required=True)
    again.add_argument("--limit", type=int, default=100)
    again.add_argument("--dry-run", action="store_true", help="show what would be re-driven")
    add_target_argument(again)
    again.set_defaults(func=_run_redrive)


@dataclass(slots=True)
class _Message:
    queue: str
    """The URL of the queue it was received from."""
    receipt: str
    record: RejectedRecord | None
    attributes: dict[str, str]
    body: str

    @property
    def reason(self) -> str:
        return self.record.reason.value if self.record else "unreadable"


async def _queue_urls(sqs: Any, settings: CommonSettings) -> dict[str, str]:
    """Name -> URL of `rejects` and, if it exists, its dead-letter queue."""
    urls = {
        settings.queue_rejects: (await sqs.get_queue_url(QueueName=settings.queue_rejects))[
            "QueueUrl"
        ]
    }
    try:
        response = await sqs.get_queue_url(QueueName=settings.queue_rejects_dlq)
    except sqs.exceptions.QueueDoesNotExist:
        return urls
    urls[settings.queue_rejects_dlq] = response["QueueUrl"]
    return urls


async def _receive_all(sqs: Any, queue_urls: Iterable[str], limit: int) -> list[_Message]:
    """Receive up to `limit` messages from the queues in turn, holding them invisible until
    released or deleted."""
    seen: list[_Message] = []
    for url in queue_urls:
        await _receive(sqs, url, limit, seen)
    return seen


async def _receive(sqs: Any, queue_url: str, limit: int, seen: list[_Message]) -> None:
    while len(seen) < limit:
        response = await sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=120,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            break
        for m in messages:
            attrs = {
                k: v.get("StringValue", "") for k, v in (m.get("MessageAttributes") or {}).items()
            }
            try:
                event = codec.decode_event(m["Body"].encode())
                record = event if isinstance(event, RejectedRecord) else None
            except ContractError:
                record = None
            seen.append(_Message(queue_url, m["ReceiptHandle"], record, attrs, m["Body"]))


async def _release(sqs: Any, messages: list[_Message]) -> None:
    """Make the messages visible again, at once."""
    for queue_url in dict.fromkeys(m.queue for m in messages):
        mine = [m for m in messages if m.queue == queue_url]
        for start in range(0, len(mine), 10):
            await sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": 0}
                    for i, m in enumerate(mine[start : start + 10])
                ],
            )


async def list_rejects(
    settings: CommonSettings, *, reason: str | None = None, samples: int = 3, limit: int = 10_000
) -> dict[str, Any]:
    """{"total": n, "queues": {queue: n}, "reasons": {reason: {"count": n, "samples": [...]}}}"""
    clients = AwsClients(settings)
    async with clients.create("sqs") as sqs:
        urls = await _queue_urls(sqs, settings)
        messages = await _receive_all(sqs, urls.values(), limit)
        try:
            counts = Counter(m.reason for m in messages)
            out: dict[str, Any] = {
                "total": len(messages),
                "queues": {
                    name: sum(m.queue == url for m in messages) for name, url in urls.items()
                },
                "reasons": {},
            }
            for name, count in counts.most_common():
                if reason and name != reason:
                    continue
                chosen = [m for m in messages if m.reason == name][:samples]
                out["reasons"][name] = {"count": count, "samples": [_sample(m) for m in chosen]}
            return out
        finally:
            await _release(sqs, messages)


def _sample(message: _Message) -> dict[str, Any]:
    r = message.record
    if r is None:
        return {"body": message.body[:200]}
    return {
        "detail": r.detail,
        "device": r.device,
        "source": f"{r.source.shard_id}/{r.source.sequence_number}/{r.source.sub_sequence_number}",
        "raw": r.raw[:120].decode("utf-8", "replace") if r.raw else None,
        "raw_s3_uri": r.raw_s3_uri,
        "raw_size": r.raw_size,
    }


async def redrive(
    settings: CommonSettings, *, reason: str, limit: int = 100, dry_run: bool = False
) -> dict[str, int]:
    """Re-put up to `limit` rejects of `reason` where they came from; {"redriven", "failed"}."""
    clients = AwsClients(settings)
    async with (
        clients.create("sqs") as sqs,
        clients.create("kinesis") as kinesis,
        clients.create("s3") as s3,
    ):
        messages = await _receive_all(sqs, (await _queue_urls(sqs, settings)).values(), 10_000)
        chosen = [m for m in messages if m.reason == reason][:limit]
        keep = [m for m in messages if m not in chosen]
        done = failed = 0
        try:
            for m in chosen:
                if dry_run:
                    keep.append(m)
                    continue
                try:
                    data, key, stream = await _rebuild(s3, m)
                    await kinesis.put_record(
                        StreamName=stream or settings.stream_raw, Data=data, PartitionKey=key
                    )
                except Exception as exc:  # keep the message; report and go on
                    print(f"not re-driven: {type(exc).__name__}: {exc}", file=sys.stderr)
                    keep.append(m)
                    failed += 1
                    continue
                await sqs.delete_message(QueueUrl=m.queue, ReceiptHandle=m.receipt)
                done += 1
        finally:
            await _release(sqs, keep)
        return {"redriven": done, "failed": failed, "matched": len(chosen)}


async def _rebuild(s3: Any, message: _Message) -> tuple[bytes, str, str | None]:
    """The record data, partition key and stream (None: telemetry-raw) of a rejected record."""
    record = message.record
    if record is None:
        raise ValueError("message body is not a rejected.v1 record")
    raw = record.raw
    if record.raw_s3_uri:
        bucket, _, key = record.raw_s3_uri.removeprefix("s3://").partition("/")
        response = await s3.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            raw = await body.read()
    attrs = message.attributes
    principal = attrs.get("principal") or record.device or ""
    partition_key = attrs.get("partition_key") or principal or "redrive"
    kind = attrs.get("raw_kind", RawKind.PAYLOAD.value)
    if kind == RawKind.EVENT.value:
        return raw, partition_key, record.source.stream
    if kind == RawKind.RECORD.value:
        return raw, partition_key, None
    envelope = RuleEnvelope(
        topic=attrs.get("topic", ""),
        principal=principal,
        received_ms=int(attrs.get("received_ms", "0") or 0),
        payload=raw,
    )
    return codec.encode(envelope), partition_key, None


def _run_list(args: argparse.Namespace) -> int:
    settings = load_settings(CommonSettings, resolve_env(args.aws))
    out = asyncio.run(
        list_rejects(settings, reason=args.reason, samples=args.samples, limit=args.max)
    )
    if args.json:
        print(json.dumps(out))
        return 0
    where = ", ".join(f"{n} in {queue}" for queue, n in out["queues"].items() if n)
    print(f"{out['total']} rejected records" + (f" ({where})" if where else ""))
    for name, info in out["reasons"].items():
        print(f"  {name}: {info['count']}")
        for sample in info["samples"]:
            print(f"      {json.dumps(sample)[:300]}")
    return 0


def _run_redrive(args: argparse.Namespace) -> int:
    settings = load_settings(CommonSettings, resolve_env(args.aws))
    out = asyncio.run(redrive(settings, reason=args.reason, limit=args.limit, dry_run=args.dry_run))
    print(json.dumps(out))
    return 1 if out["failed"] else 0
