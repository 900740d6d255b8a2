"""The deduplicator against a reference model: exact inside the window, bounded in memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from railpulse_ingest.dedup import Deduplicator


def test_window_and_out_of_order() -> None:
    d = Deduplicator(window=64, max_trains=10)
    for seq in (10, 12, 11, 200):
        assert not d.seen("t", seq)
        d.mark("t", seq)
    assert d.seen("t", 200) and not d.seen("t", 199) and not d.seen("t", 201)
    assert not d.seen("t", 150)  # inside the window, never marked: a late frame passes
    assert not d.seen("t", 12) and d.beyond_window == 1  # older than the window: let through


def test_memory_is_bounded_by_trains_times_window() -> None:
    d = Deduplicator(window=1024, max_trains=3)
    for train in "abcd":
        d.mark(train, 1)
    assert len(d) == 3 and d.evicted == 1 and not d.seen("a", 1) and d.seen("d", 1)
    assert d.memory_bound_bytes == 3 * 1024 // 8
    d.mark("b", 2)  # b is now the most recent: c goes next
    d.mark("e", 1)
    assert d.seen("b", 1) and not d.seen("c", 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xyz"), st.integers(0, 400)), max_size=300))
def test_matches_a_set_inside_the_window(ops: list[tuple[str, int]]) -> None:
    window = 64
    d = Deduplicator(window=window, max_trains=10)
    marked: dict[str, set[int]] = {}
    for train, seq in ops:
        high = max(marked.get(train, {-1}))
        expected = seq in marked.get(train, set()) and seq > high - window
        assert d.seen(train, seq) is expected
        d.mark(train, seq)
        marked.setdefault(train, set()).add(seq)


def test_big_jumps_clear_the_ring() -> None:
    d = Deduplicator(window=64, max_trains=1)
    d.mark("s", 1_700_000_000_000)
    d.mark("s", 1_700_000_000_030)
    d.mark("s", 1_700_000_001_000)  # ms-based seqs of a generic sensor
    assert d.seen("s", 1_700_000_001_000) and not d.seen("s", 1_700_000_000_999)
    assert not d.seen("s", 1_700_000_000_000 + 1000 - 64 + 30)
