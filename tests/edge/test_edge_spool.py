"""The spool on its own: durability of seq, ack, bounds, eviction policy and its accounting."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from railpulse_edge.errors import SpoolError
from railpulse_edge.spool import Eviction, Spool, read_stats


def _body(seq: int, size: int = 100) -> bytes:
    return f"{seq:08d}".encode().ljust(size, b"x")


def _fill(spool: Spool, n: int, ts_ms: int = 1_000, size: int = 100) -> list[int]:
    return [spool.append(ts_ms + i, lambda s: _body(s, size)).seq for i in range(n)]


def test_seq_is_monotonic_across_reopen_even_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    spool = Spool(path)
    assert _fill(spool, 5) == [0, 1, 2, 3, 4]
    assert spool.ack(range(5)) == 5
    assert len(spool) == 0
    spool.close()
    spool = Spool(path)
    assert spool.next_seq == 5
    assert _fill(spool, 2) == [5, 6]
    spool.close()


def test_frames_leave_only_on_ack_and_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    spool = Spool(path, synchronous="NORMAL")
    _fill(spool, 10)
    spool.ack([0, 1, 2, 99])
    # No close(): the WAL is not checkpointed, as after kill -9.
    stats = read_stats(path)
    assert (stats.pending, stats.next_seq, stats.oldest_seq) == (7, 10, 3)
    assert [e.seq for e in spool.oldest(4)] == [3, 4, 5, 6]
    assert [e.seq for e in spool.oldest(4, exclude={3, 5})] == [4, 6, 7, 8]
    assert spool.oldest(1)[0].body == _body(3)


def _crash_after_append(path: str) -> None:
    spool = Spool(path)
    _fill(spool, 25)
    import os

    os._exit(0)  # no close, no checkpoint, no atexit


def test_a_process_that_dies_without_closing_keeps_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    proc = multiprocessing.get_context("spawn").Process(target=_crash_after_append, args=(str(path),))
    proc.start()
    proc.join(30)
    spool = Spool(path)
    assert len(spool) == 25 and spool.next_seq == 25
    spool.close()


def test_overflow_by_count_evicts_oldest_and_counts_exactly(tmp_path: Path) -> None:
    seen: list[Eviction] = []
    spool = Spool(tmp_path / "t.db", max_frames=50, on_evict=seen.append)
    _fill(spool, 130)
    stats = spool.stats()
    assert stats.pending == 50 and stats.evicted_size == 80 and stats.evicted == 80
    assert sum(e.count for e in seen) == 80
    assert [e.seq for e in spool.oldest(1)] == [80]  # the newest 50 are kept
    assert spool.gaps() == [Eviction("size", 0, 79, 80)]  # one contiguous gap
    spool.close()
    assert read_stats(tmp_path / "t.db").evicted_size == 80  # persisted


def test_overflow_by_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "t.db", max_bytes=1000)
    _fill(spool, 25, size=100)
    assert len(spool) == 10 and spool.stats().pending_bytes == 1000
    assert spool.stats().evicted_size == 15


def test_in_flight_frames_are_never_evicted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "t.db", max_frames=10)
    spool.in_flight = lambda: {0, 1}
    _fill(spool, 20)
    assert [e.seq for e in spool.oldest(3)] == [0, 1, 12]
    assert spool.stats().evicted_size == 10
    spool.ack([0, 1])  # the link is back: the next gap is a new episode
    spool.in_flight = lambda: ()
    _fill(spool, 3)
    assert spool.gaps() == [Eviction("size", 2, 11, 10), Eviction("size", 12, 12, 1)]


def test_age_bound_evicts_by_sensor_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "t.db", max_age_s=60)
    for i in range(10):
        spool.append(i * 10_000, _body)  # one frame every 10 s
    ev = spool.expire(now_ms=100_000)  # cutoff 40 s: frames at 0..30 s go
    assert ev == Eviction("age", 0, 3, 4)
    assert spool.stats().evicted_age == 4 and len(spool) == 6
    assert spool.expire(now_ms=100_000) is None


def test_one_writer_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "t.db")
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path / "t.db")
    spool.close()
    Spool(tmp_path / "t.db").close()


def test_not_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(SpoolError):
        Spool(path)


def test_a_spool_keeps_its_counter_epoch_and_a_new_spool_gets_a_new_one(tmp_path: Path) -> None:
    """The epoch goes with the counter: a restart on the same spool keeps both, a spool made
    anew (storage replaced, file lost) restarts seq at 0 under another epoch."""
    path = tmp_path / "t.db"
    spool = Spool(path)
    epoch = spool.epoch
    assert 0 < epoch < 2**53 and spool.stats().epoch == epoch
    _fill(spool, 3)
    spool.close()
    assert read_stats(path).epoch == epoch  # persisted, readable without the lock
    spool = Spool(path)
    assert (spool.epoch, spool.next_seq) == (epoch, 3)
    spool.close()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    spool = Spool(path)
    assert spool.next_seq == 0 and spool.epoch not in (0, epoch)
    spool.close()


def test_a_spool_made_before_epochs_gets_one_when_first_opened(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "t.db"
    spool = Spool(path)
    _fill(spool, 2)
    spool.close()
    with sqlite3.connect(path) as db:  # as an earlier release left it: no epoch
        db.execute("DELETE FROM meta WHERE key = 'epoch'")
    assert read_stats(path).epoch == 0
    spool = Spool(path)
    epoch = spool.epoch
    assert epoch != 0 and spool.next_seq == 2  # the counter goes on, now with an epoch
    spool.close()
    spool = Spool(path)
    assert spool.epoch == epoch
    spool.close()
