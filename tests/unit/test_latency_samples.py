"""Latency samples (issue 18): the notifier's per-sample lines, split into hops; the slowest
samples name the hop that made them slow; the demo's table counts what the bench counts."""

from __future__ import annotations

import json
from pathlib import Path

from railpulse_cli.demo.report import Report, latency_table
from railpulse_cli.demo.samples import HOPS, hop_stats, read_samples, slowest, windows

T0 = 1_764_000_000_000


def line(train: str, taken: int, hops: tuple[int, int, int, int, int], **extra: object) -> str:
    times = [taken]
    for h in hops:
        times.append(times[-1] + h)
    keys = ("taken_ms", "broker_ms", "ingested_ms", "detected_ms", "queue_received_ms",
            "shadow_ms")
    return json.dumps({"event": "notification.sample", "train": train, "alert_key": "limit:x",
                       "ts_ms": taken, **dict(zip(keys, times, strict=True)), **extra})


def write_log(tmp_path: Path, lines: list[str]) -> Path:
    log = tmp_path / "notifier.log"
    log.write_text("\n".join([json.dumps({"event": "notifier.started"}), *lines,
                              "not json at all", ""]))
    return log


def test_a_sample_is_split_into_hops_that_add_up_to_its_total(tmp_path: Path) -> None:
    log = write_log(tmp_path, [
        line("lat-1", T0, (50, 300, 200, 40, 60)),
        line("other-1", T0, (1, 1, 1, 1, 1)),  # another run's train
        line("lat-2", T0 - 10_000, (1, 1, 1, 1, 1)),  # before this run
        line("lat-3", T0, (50, 0, 200, 40, 60), ingested_ms=0),  # a hop's time missing
    ])
    (sample,) = read_samples(log, "lat-", T0)
    assert sample.hops == dict(zip(HOPS, (50.0, 300.0, 200.0, 40.0, 60.0), strict=True))
    assert sample.total_ms == sum(sample.hops.values()) == 650.0


def test_the_slowest_samples_name_the_hop_furthest_above_its_median(tmp_path: Path) -> None:
    usual = (50, 300, 200, 40, 100)
    lines = [line(f"lat-{i}", T0 + i * 1000, usual) for i in range(100)]
    lines.append(line("lat-slow-broker", T0, (50, 1500, 200, 40, 100)))
    lines.append(line("lat-slow-shadow", T0, (50, 300, 200, 40, 1000)))
    samples = read_samples(write_log(tmp_path, lines), "lat-")
    worst = slowest(samples, 3)
    assert [(w["train"], w["hop"]) for w in worst[:2]] == [
        ("lat-slow-broker", "broker_to_ingest"), ("lat-slow-shadow", "notifier_to_shadow")]
    stats = hop_stats(samples)
    assert stats["broker_to_ingest"]["p50_ms"] == 300.0
    assert stats["broker_to_ingest"]["max_ms"] == 1500.0
    assert stats["total"]["max_ms"] == 1890.0


def test_windows_give_p99_and_n_per_stretch_of_sensor_time(tmp_path: Path) -> None:
    lines = [line(f"lat-{i}", T0 + i * 1000, (1, 1, 1, 1, 100 if i < 60 else 900))
             for i in range(120)]
    got = windows(read_samples(write_log(tmp_path, lines)), T0, 60.0)
    assert [(w["from_s"], w["samples"], w["max_ms"]) for w in got] == [
        (0.0, 60, 104.0), (60.0, 60, 904.0)]


def test_the_demo_table_has_one_row_per_hop_and_the_same_n_in_each(tmp_path: Path) -> None:
    log = write_log(tmp_path, [line("t-1", T0 + i, (10, 20, 30, 40, 50)) for i in range(7)])
    table = latency_table(log, {"t-1"}, T0)
    assert {len(v) for v in table.values()} == {7}
    assert table["sensor -> shadow (end to end)"] == [150.0] * 7
    text = Report(latency_ms=table).render()
    assert "sensor -> shadow (end to end)" in text and "      7" in text
    assert "n" in text.split("latency (ms)")[1].splitlines()[0]
