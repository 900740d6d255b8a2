"""Alarm lifecycle against the running stack: redelivery, two notifiers, shadow conflicts, DLQ."""

from __future__ import annotations

import uuid

import pytest
from ntkit import Resources, Seen, anomaly, client, running, until
from railpulse_shared.contracts import Severity

pytestmark = pytest.mark.stack


def _train() -> str:
    # Shadows need no thing in the stand-in: a fresh name keeps tests apart.
    return f"nt-train-{uuid.uuid4().hex[:8]}"


async def test_redelivered_alert_does_not_raise_a_second_alarm(res: Resources) -> None:
    train, seen = _train(), Seen()
    first = anomaly(train)
    async with running(res.settings(), seen):
        res.send(first)
        assert await seen.until(lambda s: len(s) == 1, 10)
        res.send(first, first)  # the same anomaly delivered twice more
        assert await seen.until(lambda s: len(s) == 3, 10)
    assert [n.duplicate for n in seen.items] == [False, True, True]
    items = res.items(train)
    assert len(items) == 1 and items[0]["state"] == "raised" and items[0]["version"] == 1
    raised = [e for e in res.events() if e["train"] == train]
    assert [(e["state"], e.get("version", 1)) for e in raised] == [("raised", 1)]
    desired = res.shadow(train)["state"]["desired"]["alerts"]
    assert [a["alarm_id"] for a in desired["open"]] == [items[0]["alarm_id"]]
