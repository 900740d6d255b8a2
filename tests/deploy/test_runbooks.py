"""One runbook per alarm kind, each with its meaning, dashboard, commands and remedies."""

from __future__ import annotations

from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
KINDS = (
    "iterator-age",
    "dead-letter-depth",
    "error-rate",
    "silent-train",
    "consumer-dead-letters",
    "warehouse-set-aside",
    "clock-skew",
    "snapshot-failures",
)


@pytest.mark.parametrize("kind", KINDS)
def test_runbook_sections(kind: str) -> None:
    text = (RUNBOOKS / f"{kind}.md").read_text()
    assert "**What it means.**" in text and "**Dashboard.**" in text
    assert "## Diagnose" in text and "## Remedies" in text and "```sh" in text


def test_required_remedies_are_covered() -> None:
    text = " ".join(p.read_text() for p in RUNBOOKS.glob("*.md"))
    assert "start-message-move-task" in text  # re-drive a dead-letter queue
    assert "update-shard-count" in text  # reshard
    assert "AT_TIMESTAMP" in text  # replay a stream from a timestamp
    assert "versionId=" in text  # restore a model snapshot


def test_index_lists_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for kind in KINDS:
        assert f"({kind}.md)" in index
