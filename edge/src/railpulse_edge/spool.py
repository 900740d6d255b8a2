"""The on-train spool: every frame is written here before it is published, and leaves only on
PUBACK (or by eviction, which is counted and reported).

SQLite in WAL mode, one file per train. `seq` is allocated in the same transaction that stores
the frame, and `next_seq` is persisted in `meta`, so the per-train sequence is monotonic across
restarts even when every frame has been acknowledged or evicted. The counter's `epoch` (a random
id, see `Frame.epoch`) is made when the spool is created and kept in `meta` with it: a restart
keeps it, a new spool (storage replaced, the file lost) starts its counter at 0 under a new
epoch, so downstream takes its frames as new data, not as replays of the old counter's. (A spool
of a release without epochs gets one when it is first opened.)

Bounds and eviction policy: the spool holds at most `max_frames` frames and `max_bytes` bytes of
payload, and no frame older than `max_age_s` (by its sensor time). When a bound is exceeded it
evicts the *oldest* frames first (a ring): the newest data is what alerts and operators need, and
evicting from one end keeps the loss a contiguous range of `seq`, which downstream sees as one gap.
Every eviction is counted by reason (persisted), recorded as a range in `gaps`, and passed to
`on_evict` so the agent logs it and reports it in the shadow: a gap is never silent.

Durability: `synchronous=FULL` (default) survives power loss; `NORMAL` survives a crash of the
process (kill -9) but not of the OS, and is what a simulator of hundreds of trains uses.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from railpulse_edge.errors import SpoolError

__all__ = [
    "Eviction",
    "Spool",
    "SpoolEntry",
    "SpoolStats",
    "new_epoch",
    "pending_seqs",
    "read_stats",
]

EvictReason = Literal["size", "age"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY, reason TEXT NOT NULL, first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, count INTEGER NOT NULL, at_ms INTEGER NOT NULL);
"""
_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    ts_ms: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Eviction:
    """`count` frames evicted with seq in [first_seq, last_seq] (frames in that range that are
    not counted were delivered). In `gaps()`, one record per episode (until the next PUBACK)."""

    reason: EvictReason
    first_seq: int
    last_seq: int
    count: int


def new_epoch() -> int:
    """A random counter epoch, never 0 (which means "unknown") and exact in any JSON reader
    (below 2^53)."""
    return secrets.randbelow(2**53 - 1) + 1


@dataclass(frozen=True, slots=True)
class SpoolStats:
    pending: int
    pending_bytes: int
    next_seq: int
    evicted_size: int
    evicted_age: int
    oldest_seq: int | None
    epoch: int = 0

    @property
    def evicted(self) -> int:
        return self.evicted_size + self.evicted_age


class Spool:
    def __init__(
        self,
        path: Path | str,
        *,
        max_frames: int = 7 * 86_400,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_s: float = 7 * 86_400.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        cache_kib: int = 512,
        on_evict: Callable[[Eviction], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_frames < 1 or max_bytes < 1 or max_age_s <= 0:
            raise ValueError("spool bounds must be positive")
        self.path = Path(path)
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self.on_evict = on_evict
        self.in_flight: Callable[[], Collection[int]] = lambda: ()
        """Seqs published and awaiting PUBACK (set by the agent): never evicted."""
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writer per spool: a second agent on the same file would fork the sequence.
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolError(f"spool {self.path} is in use by another process") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
            self._db.executescript(_SCHEMA)
            self._meta = self._load_meta()
            if not self._meta["epoch"]:  # a new spool, hence a new counter
                self._meta["epoch"] = new_epoch()
            self._save_meta("schema", "epoch")
            count, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM frames"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            self._lock.close()
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc
        self._count: int = count
        self._bytes: int = size
        self._gap_open = False

    # -- meta ------------------------------------------------------------------------------------
    def _load_meta(self) -> dict[str, int]:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        version = meta.setdefault("schema", _SCHEMA_VERSION)
        if version != _SCHEMA_VERSION:
            raise SpoolError(f"spool {self.path} has schema {version}, expected {_SCHEMA_VERSION}")
        for key in ("next_seq", "evicted_size", "evicted_age", "epoch"):
            meta.setdefault(key, 0)
        return meta

    def _save_meta(self, *keys: str) -> None:
        self._db.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(k, self._meta[k]) for k in keys],
        )

    # -- writing ---------------------------------------------------------------------------------
    def append(self, ts_ms: int, build: Callable[[int], bytes]) -> SpoolEntry:
        """Allocate the next seq, store `build(seq)` durably, evict past the bounds; return it."""
        seq = self._meta["next_seq"]
        body = build(seq)
        evictions: list[Eviction] = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO frames(seq, ts_ms, body) VALUES (?, ?, ?)", (seq, ts_ms, body))
            self._meta["next_seq"] = seq + 1
            self._count += 1
            self._bytes += len(body)
            if self._count > self.max_frames or self._bytes > self.max_bytes:
                ev = self._evict_oldest()
                if ev is not None:
                    evictions.append(ev)
            self._save_meta("next_seq", *(("evicted_size",) if evictions else ()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._reload_counts()
            raise
        for ev in evictions:
            self._notify(ev)
        return SpoolEntry(seq, ts_ms, body)

    def _evict_oldest(self) -> Eviction | None:
        # Within the caller's transaction. Never evicts the frame just written, nor frames in
        # flight (they may already be at the broker: evicting them would count a frame as lost
        # that arrives), so the bounds may be exceeded by the in-flight window.
        over_n = self._count - self.max_frames
        over_b = self._bytes - self.max_bytes
        protected = self.in_flight()
        newest = self._meta["next_seq"] - 1
        chosen: list[int] = []
        size = 0
        for seq, length in self._db.execute(
            "SELECT seq, length(body) FROM frames ORDER BY seq LIMIT ?",
            (max(over_n, 0) + len(protected) + 64,),
        ):
            if (len(chosen) >= over_n and size >= over_b) or seq == newest:
                break
            if seq in protected:
                continue
            chosen.append(seq)
            size += length
        if not chosen:
            return None
        self._db.executemany("DELETE FROM frames WHERE seq = ?", [(s,) for s in chosen])
        self._count -= len(chosen)
        self._bytes -= size
        self._meta["evicted_size"] += len(chosen)
        ev = Eviction("size", chosen[0], chosen[-1], len(chosen))
        self._record_gap(ev)
        return ev

    def expire(self, now_ms: int | None = None) -> Eviction | None:
        """Evict frames older than `max_age_s` (oldest first, by seq order)."""
        cutoff = (now_ms if now_ms is not None else int(self._clock() * 1000)) - self.max_age_ms
        rows = self._db.execute(
            "SELECT seq, ts_ms, length(body) FROM frames ORDER BY seq LIMIT 10000"
        ).fetchall()
        protected = self.in_flight()
        old = []
        for seq, ts, length in rows:
            if ts >= cutoff:
                break
            if seq not in protected:
                old.append((seq, length))
        if not old:
            return None
        ev = Eviction("age", old[0][0], old[-1][0], len(old))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM frames WHERE seq = ?", [(seq,) for seq, _ in old])
            self._meta["evicted_age"] += ev.count
            self._record_gap(ev)
            self._save_meta("evicted_age")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._reload_counts()
            raise
        self._count -= ev.count
        self._bytes -= sum(length for _, length in old)
        self._notify(ev)
        return ev

    def _record_gap(self, ev: Eviction) -> None:
        now = int(self._clock() * 1000)
        # One gap per episode: evictions merge until a frame is acknowledged (the link is back).
        prev = self._db.execute("SELECT id, reason FROM gaps ORDER BY id DESC LIMIT 1").fetchone()
        if self._gap_open and prev is not None and prev[1] == ev.reason:
            self._db.execute(
                "UPDATE gaps SET first_seq = min(first_seq, ?), last_seq = max(last_seq, ?),"
                " count = count + ?, at_ms = ? WHERE id = ?",
                (ev.first_seq, ev.last_seq, ev.count, now, prev[0]),
            )
        else:
            self._db.execute(
                "INSERT INTO gaps(reason, first_seq, last_seq, count, at_ms) VALUES (?, ?, ?, ?, ?)",
                (ev.reason, ev.first_seq, ev.last_seq, ev.count, now),
            )
        self._gap_open = True

    def _notify(self, ev: Eviction) -> None:
        if self.on_evict is not None:
            self.on_evict(ev)

    def _reload_counts(self) -> None:
        self._meta = self._load_meta()
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM frames"
        ).fetchone()

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove acknowledged frames; returns how many were still spooled."""
        keys = [(s,) for s in seqs]
        if not keys:
            return 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = 0
            size = 0
            for (seq,) in keys:
                row = db.execute("DELETE FROM frames WHERE seq = ? RETURNING length(body)", (seq,)).fetchone()
                if row is not None:
                    removed += 1
                    size += row[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count -= removed
        self._bytes -= size
        if removed:
            self._gap_open = False
        return removed

    # -- reading ---------------------------------------------------------------------------------
    def oldest(self, limit: int, exclude: Collection[int] = ()) -> list[SpoolEntry]:
        """Up to `limit` spooled frames, oldest first, skipping the seqs in `exclude` (in flight)."""
        out: list[SpoolEntry] = []
        cursor = -1
        while len(out) < limit:
            rows = self._db.execute(
                "SELECT seq, ts_ms, body FROM frames WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, limit + len(exclude)),
            ).fetchall()
            if not rows:
                break
            for seq, ts, body in rows:
                if seq not in exclude:
                    out.append(SpoolEntry(seq, ts, body))
                    if len(out) == limit:
                        break
            cursor = rows[-1][0]
        return out

    def gaps(self) -> list[Eviction]:
        return [
            Eviction(r, a, b, n)
            for r, a, b, n in self._db.execute(
                "SELECT reason, first_seq, last_seq, count FROM gaps ORDER BY id"
            )
        ]

    @property
    def next_seq(self) -> int:
        return self._meta["next_seq"]

    @property
    def epoch(self) -> int:
        """The counter epoch of this spool's `seq` (`Frame.epoch`)."""
        return self._meta["epoch"]

    def __len__(self) -> int:
        return self._count

    def stats(self) -> SpoolStats:
        oldest = self._db.execute("SELECT min(seq) FROM frames").fetchone()[0]
        return SpoolStats(
            pending=self._count,
            pending_bytes=self._bytes,
            next_seq=self._meta["next_seq"],
            evicted_size=self._meta["evicted_size"],
            evicted_age=self._meta["evicted_age"],
            oldest_seq=oldest,
            epoch=self._meta["epoch"],
        )

    def close(self) -> None:
        """Checkpoint the WAL into the main file and release the spool."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def pending_seqs(path: Path | str) -> set[int]:
    """Sequence numbers still spooled (not yet acknowledged), read without the lock."""
    db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        return {int(row[0]) for row in db.execute("SELECT seq FROM frames")}
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return set()
    finally:
        db.close()


def read_stats(path: Path | str) -> SpoolStats:
    """Stats of a spool that may belong to a dead (or running) agent, read without the lock."""
    db = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        count, size, oldest = db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), min(seq) FROM frames"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return SpoolStats(0, 0, 0, 0, 0, None)  # being created: nothing spooled yet
    finally:
        db.close()
    return SpoolStats(
        pending=count,
        pending_bytes=size,
        next_seq=meta.get("next_seq", 0),
        evicted_size=meta.get("evicted_size", 0),
        evicted_age=meta.get("evicted_age", 0),
        oldest_seq=oldest,
        epoch=meta.get("epoch", 0),
    )
