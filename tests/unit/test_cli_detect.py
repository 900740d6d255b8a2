"""`railpulse detect`: the service's decisions over a CSV recording, and the files it refuses."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from railpulse_cli.commands.detect import COLUMNS
from railpulse_cli.main import main

REPO = Path(__file__).resolve().parents[2]
NAB = REPO / "bench/data/nab/data/realAdExchange/exchange-2_cpc_results.csv"
T0_S = 1_764_000_000
SPIKE, DROP = 560, range(500, 512)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _recording(path: Path) -> None:
    """600 rows at 1 s, epoch seconds: three noisy channels (one header with spaces), a text
    column; `Bearing Temp 2` spikes at row SPIKE, `pressure` is empty for rows DROP."""
    rng = np.random.default_rng(7)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "Bearing Temp 2", "pressure", "status", "speed"])
        for i in range(600):
            bearing = 40 + rng.normal(0, 0.3) + (25.0 if i == SPIKE else 0.0)
            pressure = "" if i in DROP else f"{9 + rng.normal(0, 0.05):.3f}"
            writer.writerow([T0_S + i, f"{bearing:.3f}", pressure, "ok", f"{80 + rng.normal(0, 1):.2f}"])


def test_a_multichannel_recording_gets_one_decision_per_row_naming_its_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dropout (pressure empty for 5 rows) is a sensor-fault alert naming `pressure` at the
    fifth empty row; the spike is the forest's event naming the renamed `Bearing_Temp_2`, with
    its running mean as `expected` and the spike as `seen`; the text column is left out."""
    source, out = tmp_path / "run.csv", tmp_path / "decisions.csv"
    _recording(source)
    assert main(["detect", str(source), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "column 'Bearing Temp 2' is channel 'Bearing_Temp_2'" in err
    assert "text columns left out: status" in err and "600 rows, 3 channel(s)" in err

    rows = _read(out)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 600
    assert [r["time"] for r in rows] == [str(T0_S + i) for i in range(600)]
    assert {r["phase"] for r in rows[:400]} == {"warmup"}
    alerted = [(i, r["channel"], r["category"]) for i, r in enumerate(rows) if r["alert"]]
    assert (DROP[0] + 4, "pressure", "sensor_fault") in alerted, alerted
    assert "missing from the last 5 frames" in rows[DROP[0] + 4]["message"]
    spike = rows[SPIKE]
    assert spike["phase"] == "start" and spike["channel"] == "Bearing_Temp_2", spike
    assert spike["alert"] and spike["category"] == "model" and spike["evidence"] == "model"
    assert abs(float(spike["expected"]) - 40) < 1 and float(spike["seen"]) > 60
    assert float(spike["score"]) > float(spike["threshold"])
    # The dropout is the only sensor fault (how often the forest speaks on noise is its own
    # tests' business, not the command's).
    assert [a for a in alerted if a[2] == "sensor_fault"] == [(DROP[0] + 4, "pressure", "sensor_fault")]


def test_a_nab_file_runs_with_iso_times_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """A NAB series (ISO times without a zone, one `value` column) as is: one decision per row,
    nothing said during the warm-up, alerts after it."""
    assert main(["detect", str(NAB)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    with NAB.open() as f:
        source = list(csv.DictReader(f))
    assert [r["time"] for r in rows] == [r["timestamp"] for r in source]
    alerts = [i for i, r in enumerate(rows) if r["alert"]]
    assert alerts and min(alerts) >= 400 and {rows[i]["channel"] for i in alerts} == {"value"}
    assert "deciding 1624 rows of value" in captured.err


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("time,a\n1764000000,1\n", ["--time-column", "when"],
         "line 1: no column 'when' (columns: time, a); name the time column with --time-column"),
        ("time,label\n1764000000,x\n1764000001,y\n", [],
         "line 1: no numeric column besides the time 'time'; a channel is a column of numbers"),
        ("time;a;b\n1764000000;1;2\n", [],
         "line 1: one column 'time;a;b', split by ','; if the delimiter is ';', pass --delimiter ';'"),
        ("time,a\n1764000001,1\n1764000002,2\n1764000000,3\n", [],
         "line 4: time 1764000000 is before the previous row's; sort the file by time"),
        ("time,a\n1764000000,1\n1764000001,x\n", [],
         "line 3: 'x' in column 'a' is not a number; fix the cell or leave it empty"),
        ("t,a\n1,1\n2,2\n", [],
         "line 2: time 1 in column 't' could be epoch seconds, milliseconds or a counter; say which"),
        ("time,a\nyesterday,1\n", [],
         "line 2: time 'yesterday' in column 'time' is neither ISO 8601 nor epoch"),
        ("time,a\n2026-01-01T00:00:00Z,1\n1764000000,2\n", [],
         "line 3: time '1764000000' in column 'time' is not ISO 8601"),
        ("time,温度\n1764000000,1\n", [],
         "line 1: column '温度' cannot be a channel name"),
        ("time,a b,a_b\n1764000000,1,2\n", [],
         "line 1: columns 'a_b' and another both become 'a_b'; rename one of them"),
        ("time,a\n1764000000\n,2\n", [], "line 3: no time in column 'time'"),
        ("", [], "line 1: no header"),
        ("time,a\n", [], "no rows after the header"),
    ],
)
def test_a_file_it_cannot_read_is_refused_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, args: list[str], message: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "decisions.csv"
    assert main(["detect", str(source), "--out", str(out), *args]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if not x.endswith("...")]
    assert lines[-1].startswith(f"railpulse detect: {message}"), lines
    assert not out.exists(), "nothing written for a file it refused"


def test_a_missing_file_and_a_long_delimiter_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(tmp_path / "none.csv")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    assert main(["detect", str(NAB), "--delimiter", ";;"]) == 2
    assert "--delimiter ';;' is not one character" in capsys.readouterr().err
