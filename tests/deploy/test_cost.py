"""The cost model: figures for 100/500/2,000 trains, the CLI and the bench output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from railpulse_cli.main import main as cli_main
from railpulse_deploy.cost import (
    TARGET_RATIO,
    Assumptions,
    Workload,
    estimate,
    load_prices,
)


@pytest.mark.parametrize(
    ("trains", "low", "high"),
    [(100, 300, 460), (500, 650, 850), (2000, 2100, 2700)],
)
def test_railpulse_monthly_figures(trains: int, low: float, high: float) -> None:
    assert low < estimate(Workload(trains)).monthly_usd < high


def test_reference_is_about_4500_at_500_trains_without_deltas() -> None:
    # The figure: roughly $4,500 at list prices, without the per-frame delta messages.
    ref = estimate(Workload(500, assumptions=Assumptions(reference_shadow_deltas=False)))
    assert 4000 < ref.reference_monthly_usd < 5000


def test_target_met_at_500_trains() -> None:
    assert estimate(Workload(500)).ratio_to_reference <= TARGET_RATIO


def test_ratio_falls_as_fleet_grows() -> None:
    ratios = [estimate(Workload(n)).ratio_to_reference for n in (100, 500, 2000)]
    assert ratios == sorted(ratios, reverse=True)


def test_basic_ingest_has_no_messaging_charge_but_rules_are_paid() -> None:
    items = {i.item: i for i in estimate(Workload(500)).railpulse}
    assert items["messaging (Basic Ingest: not charged)"].monthly_usd == 0.0
    # 500 trains x 1 Hz x 730 h = 1,314 M rule invocations at $0.15/M.
    assert items["rules triggered (Basic Ingest)"].monthly_usd == pytest.approx(197.1, abs=0.1)


def test_never_more_tasks_than_shards() -> None:
    for n in (100, 500, 2000, 10000):
        e = estimate(Workload(n))
        for item in e.railpulse:
            if item.service == "Fargate" and item.item.startswith("detector"):
                assert item.quantity / 730 == e.sizing["telemetry"]


def test_shard_sizing_scales_with_rate() -> None:
    assert estimate(Workload(2000)).sizing["telemetry-raw"] == 3  # 2,000 rec/s at 80% of 1,000/s
    assert estimate(Workload(100, hz=10)).sizing["telemetry-raw"] == 2


def test_prices_come_from_one_dated_file() -> None:
    prices = load_prices()
    assert prices.date == "2026-11"
    with pytest.raises(KeyError, match=r"iot\.nope"):
        prices("iot", "nope")
    with pytest.raises(FileNotFoundError):
        load_prices("1999-01")


def test_invalid_fleet_rejected() -> None:
    with pytest.raises(ValueError):
        Workload(0)


def test_cli_json_is_one_object_with_the_three_fleets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["cost", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    doc = json.loads(out[0])
    assert [c["trains"] for c in doc["cases"]] == [100, 500, 2000]
    assert "retired" in doc["notes"][0]
    for case in doc["cases"]:
        assert {"monthly_usd", "reference_monthly_usd", "ratio_to_reference"} <= case.keys()
        assert case["railpulse_items"] and case["reference_items"]


def test_cli_table_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["cost", "--trains", "500", "--hz", "1", "--channels", "32"]) == 0
    out = capsys.readouterr().out
    assert "500 trains" in out and "ratio" in out and "Kinesis Data Analytics" in out
    with pytest.raises(SystemExit):
        cli_main(["cost", "--help"])
    assert "reference design" in capsys.readouterr().out


def test_bench_last_line_is_the_500_train_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cost"], capture_output=True, text=True, check=True
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(last) >= {"trains", "monthly_usd", "reference_monthly_usd", "ratio_to_reference"}
    assert last["trains"] == 500
