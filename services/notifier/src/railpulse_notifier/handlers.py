"""The notifier's core: one mailbox per train, the alarm lifecycle applied, state, events, shadow.

Anomalies are submitted per message; each train has one worker that drains its mailbox in arrival
order (per-train order across the messages of all in-flight batches) while different trains run
concurrently. Per anomaly: apply the lifecycle to the cached record, write it conditionally (on a
lost race: re-read that record and re-apply), append the transitions to Kinesis, then write the
train's desired shadow once per drained chunk if its open alerts changed. `sweep` does the same
for acknowledgements (read from the reported state) and for alarms that have gone quiet.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import msgspec
import structlog

from railpulse_notifier.errors import (
    NotAnAnomalyError,
    ShadowTooLargeError,
    ShadowUnavailableError,
    StoreContentionError,
)
from railpulse_notifier.events import EventPublisher
from railpulse_notifier.lifecycle import (
    AlarmRecord,
    Outcome,
    Rules,
    acknowledge,
    apply_anomaly,
    clear_if_quiet,
    reading_time_ms,
)
from railpulse_notifier.shadow import ShadowClient, ShadowConflict, build_desired
from railpulse_notifier.store import AlarmStore, VersionConflict
from railpulse_shared.batch import StreamRecord
from railpulse_shared.codec import decode_event
from railpulse_shared.contracts import AlarmState, AlarmTransition, Anomaly
from railpulse_shared.errors import TransientError
from railpulse_shared.metrics import Metrics

__all__ = ["Notified", "Notifier", "Observer"]

logger = structlog.get_logger()

_METRIC_OF = {
    AlarmState.RAISED: "AlarmsRaised",
    AlarmState.ESCALATED: "AlarmsEscalated",
    AlarmState.ACKNOWLEDGED: "AlarmsAcknowledged",
    AlarmState.CLEARED: "AlarmsCleared",
}


@dataclass(frozen=True, slots=True)
class Notified:
    """One message's anomaly, done: its state is stored and the train's shadow reflects it."""

    anomaly: Anomaly
    received_ms: int
    done_ms: int
    transitions: tuple[AlarmTransition, ...]
    shadow_written: bool
    duplicate: bool


class Observer(Protocol):
    def __call__(self, notified: Notified) -> None: ...


@dataclass(slots=True)
class _Train:
    name: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    records: dict[str, AlarmRecord] | None = None
    shadow_version: int | None = None
    """Version of this task's last write, or read *before* `records` was loaded (see shadow.py);
    None: the shadow has no document (or it is not known yet: then `records` is None too)."""
    written: dict[str, Any] | None = None
    mailbox: list[tuple[Anomaly, int, asyncio.Future[Notified]]] = field(default_factory=list)
    verify: bool = False
    """The last shadow write was unconditional: the next sweep re-reads the state and rewrites
    (conditionally) if a peer's newer list was replaced."""
    failed: deque[str] = field(default_factory=lambda: deque(maxlen=256))
    """Anomalies whose processing failed here: their redelivery re-sends at once (no grace)."""
    worker: asyncio.Task[None] | None = None

    def forget(self) -> None:
        """After a failure: reload everything (version first) on the next touch."""
        self.records = None
        self.shadow_version = None

    @property
    def has_open(self) -> bool:
        return bool(self.records) and any(r.open for r in (self.records or {}).values())


class Notifier:
    def __init__(
        self,
        store: AlarmStore,
        publisher: EventPublisher,
        shadow: ShadowClient,
        metrics: Metrics,
        *,
        rules: Rules,
        shadow_budget_bytes: int,
        store_max_attempts: int = 6,
        shadow_max_attempts: int = 8,
        inflight_grace_ms: int = 30_000,
        clock_skew_tolerance_ms: int = 30_000,
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.shadow = shadow
        self.metrics = metrics
        self.rules = rules
        self.budget = shadow_budget_bytes
        self.store_max_attempts = store_max_attempts
        self.shadow_max_attempts = shadow_max_attempts
        self.inflight_grace_ms = inflight_grace_ms
        """How long an unconfirmed write may still be in flight in another task (its visibility
        timeout): a duplicate of its trigger inside this window is retried, not re-sent."""
        self.clock_skew_tolerance_ms = clock_skew_tolerance_ms
        self.clock = clock
        self.observer = observer
        self._trains: dict[str, _Train] = {}

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _train(self, name: str) -> _Train:
        train = self._trains.get(name)
        if train is None:
            train = self._trains[name] = _Train(name)
        return train

    # -- anomalies -------------------------------------------------------------------------
    async def handle(self, record: StreamRecord) -> Notified:
        """One SQS message (see consume.py): a body that is not an anomaly is poison."""
        event = decode_event(record.data)
        if not isinstance(event, Anomaly):
            raise NotAnAnomalyError(f"expected anomaly.v1, got {type(event).__name__}")
        return await self.submit(event, record.arrival_ms)

    async def submit(self, anomaly: Anomaly, received_ms: int) -> Notified:
        """Apply one anomaly; resolves once its state is stored and the shadow is written."""
        train = self._train(anomaly.train)
        fut: asyncio.Future[Notified] = asyncio.get_running_loop().create_future()
        train.mailbox.append((anomaly, received_ms, fut))
        if train.worker is None:
            train.worker = asyncio.create_task(self._drain(train), name=f"train-{train.name}")
        return await fut

    async def _drain(self, train: _Train) -> None:
        async with train.lock:
            while train.mailbox:
                chunk, train.mailbox = train.mailbox, []
                try:
                    done = await self._process(train, [(a, r) for a, r, _ in chunk])
                except Exception as exc:
                    train.forget()
                    train.failed.extend(a.anomaly_id for a, _, _ in chunk)
                    for _, _, fut in chunk:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, _, fut), result in zip(chunk, done, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, Exception):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
            train.worker = None

    async def _load(self, train: _Train) -> dict[str, AlarmRecord]:
        if train.records is None:
            train.shadow_version = (await self.shadow.get(train.name)).version
            train.records = await self.store.load_train(train.name)
        return train.records

    async def _write(
        self, train: _Train, key: str, step: Callable[[AlarmRecord | None], Outcome]
    ) -> Outcome:
        """Apply `step` to the record and store it; on a lost race re-read and re-apply."""
        records = await self._load(train)
        for _ in range(self.store_max_attempts):
            outcome = step(records.get(key))
            if outcome.record is None:
                return outcome
            try:
                records[key] = await self.store.put(outcome.record)
                return outcome
            except VersionConflict:
                self.metrics.add("StoreConflicts", 1)
                fresh = await self.store.get(train.name, key)
                if fresh is None:
                    records.pop(key, None)
                else:
                    records[key] = fresh
        raise StoreContentionError(f"{train.name}/{key}: {self.store_max_attempts} lost races")

    async def _process(
        self, train: _Train, items: list[tuple[Anomaly, int]]
    ) -> list[Notified | Exception]:
        outcomes: list[Outcome | Exception] = []
        resync: list[AlarmTransition] = []
        for anomaly, _ in items:
            now = self._now_ms()
            outcome = await self._write(
                train, anomaly.alert_key,
                partial(apply_anomaly, anomaly=anomaly, now_ms=now, rules=self.rules),
            )
            if outcome.resync:
                try:
                    resync += await self._unconfirmed(train, anomaly)
                except TransientError as exc:
                    outcomes.append(exc)
                    continue
            outcomes.append(outcome)
        transitions = [t for o in outcomes if isinstance(o, Outcome) for t in o.transitions]
        # Independent outputs: the train should not wait for the archive's copy.
        _, written = await asyncio.gather(
            self.publisher.publish(transitions + resync),
            self._sync_shadow(train, force=bool(resync)),
        )
        await self._confirm(train, transitions + resync)
        done_ms = self._now_ms()
        self._count(transitions)
        notified: list[Notified | Exception] = []
        for (anomaly, received_ms), o in zip(items, outcomes, strict=True):
            if isinstance(o, Exception):
                notified.append(o)
                continue
            n = Notified(anomaly, received_ms, done_ms, tuple(o.transitions), written, o.duplicate)
            if o.transitions and written:
                taken_ms = reading_time_ms(anomaly, self.clock_skew_tolerance_ms)
                self.metrics.add("NotificationLatency", done_ms - taken_ms, "Milliseconds")
                self.metrics.add("ReceiptToShadowLatency", done_ms - received_ms, "Milliseconds")
                # One line per latency sample, with every hop's time, to explain a slow one.
                logger.info(
                    "notification.sample", train=train.name, alert_key=anomaly.alert_key,
                    ts_ms=anomaly.ts_ms, taken_ms=taken_ms, broker_ms=anomaly.received_ms,
                    ingested_ms=anomaly.ingested_ms, detected_ms=anomaly.detected_ms,
                    queue_received_ms=received_ms, shadow_ms=done_ms,
                    states=[t.state.value for t in o.transitions],
                )
            if o.duplicate:
                self.metrics.add("DuplicateAnomalies", 1)
            if self.observer is not None:
                self.observer(n)
            notified.append(n)
        return notified

    async def _unconfirmed(self, train: _Train, anomaly: Anomaly) -> list[AlarmTransition]:
        """A redelivered trigger: the outbox to re-send if its first delivery did not finish."""
        records = await self._load(train)
        cached = records.get(anomaly.alert_key)
        if cached is None or not cached.pending:
            return []
        record = await self.store.get(train.name, anomaly.alert_key)  # the cache may lag
        if record is None or not record.pending or record.trigger_id != anomaly.anomaly_id:
            if record is not None:
                records[anomaly.alert_key] = record
            return []
        records[anomaly.alert_key] = record
        young = self._now_ms() - record.last_seen_ms < self.inflight_grace_ms
        if young and anomaly.anomaly_id not in train.failed:
            # Probably still in flight in another task: retry later rather than send it twice.
            raise TransientError(f"{train.name}/{anomaly.alert_key}: delivery in flight")
        self.metrics.add("Resyncs", 1)
        return list(record.outbox)

    async def _confirm(self, train: _Train, delivered: list[AlarmTransition]) -> None:
        """Clear `pending` on the records whose outbox was just delivered."""
        records = await self._load(train)
        keys = {t.alert_key for t in delivered}
        targets = [records[k] for k in keys if k in records and records[k].pending]
        results = await asyncio.gather(*(self.store.confirm(r) for r in targets))
        for record, ok in zip(targets, results, strict=True):
            if ok:
                records[record.alert_key] = msgspec.structs.replace(record, pending=False)

    def _count(self, transitions: list[AlarmTransition]) -> None:
        for t in transitions:
            self.metrics.add(_METRIC_OF[t.state], 1)
            logger.info("alarm.transition", train=t.train, alert_key=t.alert_key,
                        alarm_id=t.alarm_id, state=t.state.value, severity=t.severity.name,
                        version=t.version)

    # -- shadow ------------------------------------------------------------------------------
    async def _sync_shadow(self, train: _Train, *, force: bool = False) -> bool:
        """Write the desired alerts if they changed; True if a write happened."""
        budget = self.budget
        desired = build_desired((await self._load(train)).values(), budget)
        if not force and desired == train.written:
            return False
        for _ in range(self.shadow_max_attempts):
            try:
                unconditional = train.shadow_version is None
                train.shadow_version = await self.shadow.update(
                    train.name, desired, train.shadow_version
                )
                train.written = desired
                # A first write cannot be conditional: the sweep verifies it off the hot path.
                train.verify = unconditional
                self.metrics.add("ShadowUpdates", 1)
                return True
            except ShadowConflict:
                self.metrics.add("ShadowConflicts", 1)
                logger.info("shadow.conflict", train=train.name, expected=train.shadow_version)
                # Version first, then state: the next write is built from state at least as new
                # as every write that the version we expect already includes.
                train.shadow_version = (await self.shadow.get(train.name)).version
                train.records = await self.store.load_train(train.name)
                desired = build_desired(train.records.values(), budget)
            except ShadowTooLargeError:
                # The train's reported state (or another desired key) takes more than its share.
                budget //= 2
                logger.warning("shadow.too_large", train=train.name, budget=budget)
                desired = build_desired(train.records.values() if train.records else (), budget)
        raise ShadowUnavailableError(f"{train.name}: {self.shadow_max_attempts} version conflicts")

    # -- sweep: acknowledgements and quiet alarms ---------------------------------------------
    def adopt(self, trains: set[str]) -> None:
        """Watch trains with open alarms that this task has not seen (after a restart, a peer's)."""
        for name in trains:
            self._train(name)

    def watched(self) -> list[str]:
        return [t.name for t in self._trains.values() if t.records is None or t.has_open]

    async def sweep_train(self, name: str) -> list[AlarmTransition]:
        train = self._train(name)
        async with train.lock:
            try:
                return await self._sweep(train)
            except Exception:
                train.forget()
                raise

    async def _sweep(self, train: _Train) -> list[AlarmTransition]:
        if train.verify and train.records is not None:
            train.records = await self.store.load_train(train.name)  # state read after the write
            train.verify = False
            if await self._sync_shadow(train):
                self.metrics.add("ShadowRepairs", 1)
        records = await self._load(train)
        open_ = [r for r in records.values() if r.open]
        if not open_:
            return []
        outcomes: list[Outcome] = []
        if any(r.state in (AlarmState.RAISED, AlarmState.ESCALATED) for r in open_):
            acked = (await self.shadow.get(train.name)).acked
            for r in open_:
                if r.alarm_id in acked:
                    now = self._now_ms()
                    outcomes.append(await self._write(
                        train, r.alert_key, partial(_ack, acked_at_ms=acked[r.alarm_id], now_ms=now)
                    ))
        for r in [r for r in records.values() if r.open]:
            now = self._now_ms()
            outcomes.append(await self._write(
                train, r.alert_key, partial(_clear, now_ms=now, rules=self.rules)
            ))
        transitions = [t for o in outcomes for t in o.transitions]
        if transitions:
            await self.publisher.publish(transitions)
            await self._confirm(train, transitions)
            self._count(transitions)
        if any(t.state is AlarmState.CLEARED for t in transitions):
            await self._sync_shadow(train)
        return transitions


def _ack(record: AlarmRecord | None, acked_at_ms: int, now_ms: int) -> Outcome:
    return Outcome(None) if record is None else acknowledge(record, acked_at_ms, now_ms)


def _clear(record: AlarmRecord | None, now_ms: int, rules: Rules) -> Outcome:
    return Outcome(None) if record is None else clear_if_quiet(record, now_ms, rules)
