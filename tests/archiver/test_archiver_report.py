"""`railpulse report` over a demo-sized lake: an HTML page with charts, and a PDF beside it whose
first page, rendered to pixels, shows the page and its charts (pdftoppm, poppler-utils).

The rendered first page is kept in .local/test-output/report/ for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from archiver_locallake import DemoLake, write_demo_lake

from railpulse_archiver.charts import completeness_heatmap, stacked_day_bars
from railpulse_archiver.report import report_days
from railpulse_cli.main import main as cli

OUTPUT = Path(__file__).resolve().parents[2] / ".local" / "test-output" / "report"
LIMIT_ORANGE = (0xD9, 0x48, 0x0F)  # charts.KIND_COLOURS["limit"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoLake:
    return write_demo_lake(tmp_path_factory.mktemp("lake"))


def _report(demo: DemoLake, out: Path, *extra: str) -> int:
    return cli(
        ["report", "--lake", str(demo.root), "--from-lake", "--from", "2026-05-28",
         "--to", "2026-05-31", "--out", str(out), *extra]
    )  # fmt: skip


def _first_page(pdf: Path) -> np.ndarray:
    """The PDF's first page as an RGB array (pdftoppm's PPM: `P6\\nW H\\n255\\n`, then bytes)."""
    root = pdf.with_name("page")
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(root)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    magic, size, depth, pixels = root.with_suffix(".ppm").read_bytes().split(b"\n", 3)
    assert (magic, depth) == (b"P6", b"255")
    width, height = map(int, size.split())
    return np.frombuffer(pixels, np.uint8).reshape(height, width, 3)


def test_report_writes_html_with_charts_and_a_pdf_whose_first_page_shows_them(
    demo: DemoLake, tmp_path: Path
) -> None:
    page = tmp_path / "fleet.html"
    assert _report(demo, page) == 0

    html = page.read_text()
    assert html.count("<svg") == 3
    # Alerts per day by kind: day 2 has the hot bearing's 18 limit alerts.
    limit_day2 = sum(1 for a in demo.alerts if a.category == "limit")
    assert f"limit 2026-05-29: {limit_day2}</title>" in html
    # Completeness per train and day: train-003 lost 6 of its 24 hours on day 3.
    assert "train-003 2026-05-30: 75 %</title>" in html
    assert "train-002 2026-05-30: 100 %</title>" in html
    # Top channels: in order of their alert counts, the busiest first.
    by_channel = Counter(a.channels[0].channel for a in demo.alerts)
    first = min(by_channel, key=lambda channel: html.index(f">{channel}<"))
    assert by_channel[first] == max(by_channel.values()), (first, by_channel)

    pdf = page.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    pixels = _first_page(pdf)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-r", "70", "-f", "1", "-l", "1", "-png", "-singlefile", str(pdf),
         str(OUTPUT / "fleet-health-page-1")],
        check=True, timeout=60,
    )  # fmt: skip
    height, width, _ = pixels.shape
    assert 1.3 < height / width < 1.5  # A4 portrait
    ink = np.any(pixels < 235, axis=2)
    assert ink.mean() > 0.05, "the first page is (nearly) blank"
    assert ink[: height // 2].mean() > 0.05 and ink[height // 2 :].mean() > 0.03
    orange = np.all(np.abs(pixels.astype(int) - LIMIT_ORANGE) < 30, axis=2)
    assert orange.sum() > 100, "the alerts chart's limit bars are not on the first page"


def test_no_pdf_writes_only_the_html(demo: DemoLake, tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    assert _report(demo, page, "--no-pdf") == 0
    assert page.is_file() and not page.with_suffix(".pdf").exists()


def test_without_chromium_the_report_says_so_and_keeps_the_html(
    demo: DemoLake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    page = tmp_path / "fleet.html"
    assert _report(demo, page) == 1
    err = capsys.readouterr().err
    assert "railpulse report: no Chromium to print the PDF" in err and "--no-pdf" in err
    assert page.is_file() and not page.with_suffix(".pdf").exists()


def test_charts_escape_their_text_and_show_a_day_without_data_as_such() -> None:
    days = [date(2026, 5, 28), date(2026, 5, 29)]
    bars = stacked_day_bars(days, {"<script>": [1, 2]}, "a & b")
    assert "<script>" not in bars and "&lt;script&gt;" in bars and "a &amp; b" in bars
    heat = completeness_heatmap(["train-001"], days, {("train-001", days[0]): 99.5}, "c")
    assert "train-001 2026-05-28: 99.5 %" in heat and "train-001 2026-05-29: no data" in heat
    assert "no alerts in this period" in stacked_day_bars(days, {}, "empty")


def test_report_days_cover_every_day_the_period_touches() -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert report_days(at("2026-05-28"), at("2026-05-31")) == [
        date(2026, 5, 28), date(2026, 5, 29), date(2026, 5, 30)
    ]  # fmt: skip
    assert report_days(at("2026-05-28T22:00"), at("2026-05-29T01:00")) == [
        date(2026, 5, 28), date(2026, 5, 29)
    ]  # fmt: skip


def test_pdftoppm_is_installed_by_bootstrap() -> None:
    """The PDF test needs poppler-utils; scripts/bootstrap.sh installs it when missing."""
    assert shutil.which("pdftoppm")
    script = (Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh").read_text()
    assert "poppler-utils" in script
