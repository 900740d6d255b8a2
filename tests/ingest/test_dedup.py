"""The deduplicator against a reference model: exact inside the window, conflicts told apart from
redeliveries, counters of different epochs kept apart, bounded in memory."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from railpulse_ingest.dedup import ContentDigest, Deduplicator
from railpulse_shared.contracts import AcceptedFrame, Position, Reading


def test_window_and_out_of_order() -> None:
    d = Deduplicator(window=64, max_counters=10)
    for seq in (10, 12, 11, 200):
        assert d.previous("t", 0, seq) == 0
        d.mark("t", 0, seq, 1000 + seq)
    assert d.previous("t", 0, 200) == 1200
    assert d.previous("t", 0, 199) == 0 and d.previous("t", 0, 201) == 0
    assert d.previous("t", 0, 150) == 0  # inside the window, never marked: a late frame passes
    assert d.previous("t", 0, 12) == 0 and d.beyond_window == 1  # older: let through, counted


def test_a_new_epoch_is_a_new_counter() -> None:
    """A counter that started again (a new spool) reuses seqs under a new epoch: new data."""
    d = Deduplicator(window=64, max_counters=10)
    d.mark("t", 7, 5, 111)
    assert d.previous("t", 7, 5) == 111
    assert d.previous("t", 8, 5) == 0 and d.previous("t", 0, 5) == 0
    d.mark("t", 8, 5, 222)
    assert (d.previous("t", 7, 5), d.previous("t", 8, 5)) == (111, 222)
    assert len(d) == 2


def test_memory_is_bounded_by_counters_times_window() -> None:
    d = Deduplicator(window=1024, max_counters=3)
    for train in "abcd":
        d.mark(train, 0, 1, 9)
    assert len(d) == 3 and d.evicted == 1 and d.previous("a", 0, 1) == 0
    assert d.previous("d", 0, 1) == 9
    assert d.memory_bound_bytes == 3 * 1024 * 4
    d.mark("b", 0, 2, 9)  # b is now the most recent: c goes next
    d.mark("e", 0, 1, 9)
    assert d.previous("b", 0, 1) == 9 and d.previous("c", 0, 1) == 0


def test_default_memory_bound_is_64_mib() -> None:
    assert Deduplicator().memory_bound_bytes == 64 * 1024 * 1024


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("xyz"), st.integers(0, 2), st.integers(0, 400), st.integers(1, 3)
        ),
        max_size=300,
    )
)
def test_matches_a_dict_inside_the_window(ops: list[tuple[str, int, int, int]]) -> None:
    window = 64
    d = Deduplicator(window=window, max_counters=10)
    marked: dict[tuple[str, int], dict[int, int]] = {}
    for train, epoch, seq, digest in ops:
        counter = marked.setdefault((train, epoch), {})
        high = max(counter, default=-1)
        expected = counter.get(seq, 0) if seq > high - window else 0
        assert d.previous(train, epoch, seq) == expected
        d.mark(train, epoch, seq, digest)
        counter[seq] = digest


def test_big_jumps_clear_the_ring() -> None:
    d = Deduplicator(window=64, max_counters=1)
    d.mark("s", 0, 1_700_000_000_000, 1)
    d.mark("s", 0, 1_700_000_000_030, 2)
    d.mark("s", 0, 1_700_000_001_000, 3)  # ms-based seqs of a generic sensor
    assert d.previous("s", 0, 1_700_000_001_000) == 3
    assert d.previous("s", 0, 1_700_000_000_999) == 0
    assert d.previous("s", 0, 1_700_000_000_000 + 1000 - 64 + 30) == 0


def test_clearing_wraps_around_the_ring() -> None:
    d = Deduplicator(window=8, max_counters=1)
    for seq in range(8):
        d.mark("t", 0, seq, 100 + seq)
    d.mark("t", 0, 13, 5)  # 8..12 skipped: slots 0..4 (seqs 0..4) cleared, 5..7 kept
    assert [d.previous("t", 0, s) for s in range(6, 14)] == [106, 107, 0, 0, 0, 0, 0, 5]


NAMES = ("speed", "bearing_temp_1", "humidity")


def _accepted(**overrides: object) -> AcceptedFrame:
    fields: dict[str, object] = {
        "train": "t",
        "seq": 1,
        "ts_ms": 1_764_374_400_123,
        "readings": {"speed": Reading(80.5), "bearing_temp_1": Reading(41.0)},
        "position": Position(52.5, 13.4),
        "speed_kmh": 80.5,
    }
    return AcceptedFrame(**(fields | overrides))  # type: ignore[arg-type]


def test_digest_is_content_only() -> None:
    """The same frame delivered again (later receipt, other source, as backfill, readings in
    another order) has the same digest; any change of content changes it."""
    digest = ContentDigest(NAMES)
    base = digest.of_accepted(_accepted())
    again = _accepted(
        received_ms=5,
        ingested_ms=6,
        backfill=True,
        readings={"bearing_temp_1": Reading(41.0), "speed": Reading(80.5)},
    )
    assert digest.of_accepted(again) == base != 0
    for change in (
        {"ts_ms": 1_764_374_400_124},
        {"readings": {"speed": Reading(80.6), "bearing_temp_1": Reading(41.0)}},
        {"readings": {"speed": Reading(80.5)}},
        {"readings": {"speed": Reading(80.5), "bearing_temp_1": Reading(41.0), "x": Reading(1)}},
        {"position": None},
        {"speed_kmh": 80.0},
    ):
        assert digest.of_accepted(_accepted(**change)) != base, change


def test_a_checked_row_digests_as_its_values() -> None:
    """The express lane digests its checked readings struct as a row (`astuple`, fields in
    `names`' order, absent ones unset); it must give what the values give."""
    fields = [(n, float | msgspec.UnsetType, msgspec.UNSET) for n in NAMES]
    checked_type = msgspec.defstruct("Checked", fields)
    digest = ContentDigest(NAMES)
    for values in ({}, {"humidity": 40.0}, {"speed": 1.0, "bearing_temp_1": 2.0, "humidity": 3.0}):
        row = msgspec.structs.astuple(checked_type(**values))
        position = Position(1.0, 2.0)
        assert digest.of_row(5, row, position, 3.0) == digest.of_values(5, values, position, 3.0)
    assert digest.of_values(5, {"speed": 1.0}, None, None) != digest.of_values(
        5, {"speed": 1.0, "other": 1.0}, None, None
    )
