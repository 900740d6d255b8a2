"""docs/lake-walkthrough.ipynb runs, top to bottom in a real kernel, against a demo-sized lake
and finds what is in it: the train whose bearing overheated, its alerts and its alarm."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
from archiver_locallake import HOT_TRAIN, write_demo_lake
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "lake-walkthrough.ipynb"


def _texts(cell: Any) -> str:
    out = []
    for output in cell.get("outputs", []):
        out.append(output.get("text", ""))
        out.append(output.get("data", {}).get("text/plain", ""))
    return "".join(out)


def test_the_notebook_is_kept_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")


def test_the_notebook_plots_a_trains_bearing_temperatures_with_its_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = write_demo_lake(tmp_path / "lake", trains=3, days=2)
    monkeypatch.setenv("RAILPULSE_LAKE", str(demo.root))
    monkeypatch.delenv("RAILPULSE_TRAIN", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    text = "\n".join(_texts(c) for c in notebook.cells)
    limits = sum(1 for a in demo.alerts if a.category == "limit")
    assert f"train: {HOT_TRAIN}" in text
    assert f"{limits} alerts, 1 alarms" in text
    raised = min(a.detected_ms for a in demo.alerts if a.category == "limit") + 100  # see the lake
    at = datetime.fromtimestamp(raised / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    assert f"limit:bearing_temp_3: raised {at}, acknowledged after 20 min" in text
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1
