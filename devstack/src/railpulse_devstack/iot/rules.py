"""The topic rules: telemetry topics into Kinesis `telemetry-raw` with PutRecords.

| subscription (privileged client)        | record topic                  | principal |
|-----------------------------------------|-------------------------------|-----------|
| `trains/+/telemetry`                    | as published                  | topic segment 2 (the ACL pins it to the publisher) |
| `$aws/rules/+/trains/+/telemetry`       | without `$aws/rules/<rule>/`  | topic segment 2 after the prefix (ACL: `$aws/rules/+/trains/%u/#`) |
| `iot/sensors/+` (stamped by the broker) | `iot/sensors`                 | last segment, the publisher's username |

Each Kinesis record's Data is the shared contract `railpulse_shared.contracts.RuleEnvelope`
encoded by `railpulse_shared.codec.encode` (JSON, UTF-8):

    {"topic": "trains/train-007/telemetry",  the topic the device published to (a Basic Ingest
                                              prefix `$aws/rules/<rule>/` removed, as topic() does;
                                              `iot/sensors` without the broker's stamp)
     "principal": "train-007",               the authenticated device: certificate CN = thing name
     "received_ms": 1764371234567,           when the rule received it, epoch ms
     "payload": "<base64>"}                  the device's bytes, untouched

and its PartitionKey is `principal`. Ingest decodes it with `codec.decode_envelope` and compares
`principal` with the device the payload claims to be.

Records that arrive within `linger` (5 ms) of each other go out in one PutRecords call (at most
500 records / 5 MiB); records a call reports as failed are retried with backoff, in order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from railpulse_shared.codec import encode
from railpulse_shared.contracts import RuleEnvelope

__all__ = ["SUBSCRIPTIONS", "KinesisRule", "route"]

logger = structlog.get_logger()

SUBSCRIPTIONS = ("trains/+/telemetry", "$aws/rules/+/trains/+/telemetry", "iot/sensors/+")
_MAX_BATCH = 500
_MAX_BATCH_BYTES = 5 * 1024 * 1024
_MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Routed:
    topic: str
    principal: str


def route(topic: str) -> Routed | None:
    """Which rule topic and principal a delivered MQTT topic stands for, or None."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "trains" and parts[2] == "telemetry":
        return Routed(topic, parts[1])
    if (
        len(parts) == 6
        and parts[:2] == ["$aws", "rules"]
        and parts[3] == "trains"
        and parts[5] == "telemetry"
    ):
        return Routed("/".join(parts[3:]), parts[4])
    if len(parts) == 3 and parts[:2] == ["iot", "sensors"] and parts[2]:
        return Routed("iot/sensors", parts[2])
    return None


class KinesisRule:
    def __init__(
        self,
        kinesis: Any,
        stream: str,
        *,
        linger: float = 0.005,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream
        self._linger = linger
        self._clock = clock
        self._queue: queue.Queue[RuleEnvelope | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kinesis-rule", daemon=True)
        self.put_count = 0
        self.failed_count = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def offer(self, topic: str, payload: bytes) -> bool:
        routed = route(topic)
        if routed is None:
            return False
        self._queue.put(
            RuleEnvelope(
                topic=routed.topic,
                principal=routed.principal,
                received_ms=int(self._clock() * 1000),
                payload=payload,
            )
        )
        return True

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.payload)
            deadline = time.monotonic() + self._linger
            while len(batch) < _MAX_BATCH and size < _MAX_BATCH_BYTES // 2:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(remaining, 0))
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item.payload)
            self._put(batch)

    def _put(self, batch: list[RuleEnvelope]) -> None:
        entries = [{"Data": encode(r), "PartitionKey": r.principal} for r in batch]
        for attempt in range(_MAX_ATTEMPTS):
            try:
                resp = self._kinesis.put_records(StreamName=self._stream, Records=entries)
            except Exception as err:
                logger.warning(
                    "rule.put_failed", error=repr(err), records=len(entries), attempt=attempt
                )
                time.sleep(min(0.05 * 2**attempt, 2.0))
                continue
            failed = [e for e, r in zip(entries, resp["Records"], strict=True) if "ErrorCode" in r]
            self.put_count += len(entries) - len(failed)
            if not failed:
                return
            entries = failed
            time.sleep(min(0.05 * 2**attempt, 2.0))
        self.failed_count += len(entries)
        logger.error("rule.records_dropped", records=len(entries), stream=self._stream)
