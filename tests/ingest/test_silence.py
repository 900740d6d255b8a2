"""Silent trains: per-train last-heard times, bounded, counted against the threshold."""

from __future__ import annotations

from railpulse_ingest.silence import SilenceWatch

MIN = 60_000
DAY = 24 * 60 * MIN


def test_a_train_not_heard_for_the_threshold_is_silent_until_it_speaks() -> None:
    watch = SilenceWatch(15 * MIN, DAY, max_trains=100)
    watch.heard("train-1", 0)
    watch.heard("train-2", 10 * MIN)
    assert watch.silent(14 * MIN) == []
    assert watch.silent(15 * MIN) == ["train-1"]
    assert watch.silent(30 * MIN) == ["train-1", "train-2"]  # least recently heard first
    watch.heard("train-1", 30 * MIN)
    assert watch.silent(31 * MIN) == ["train-2"]


def test_an_old_frame_does_not_move_a_train_back_in_time() -> None:
    watch = SilenceWatch(15 * MIN, DAY, max_trains=100)
    watch.heard("train-1", 20 * MIN)
    watch.heard("train-1", 1 * MIN)  # a backfilled frame arriving late
    assert watch.silent(30 * MIN) == []


def test_memory_is_bounded_by_the_horizon_and_the_train_count() -> None:
    watch = SilenceWatch(15 * MIN, DAY, max_trains=3)
    for i in range(5):
        watch.heard(f"train-{i}", i)
    assert len(watch) == 3  # the least recently heard were forgotten
    assert watch.silent(DAY + 3) == ["train-3", "train-4"]  # train-2 is past the horizon
    assert len(watch) == 2
