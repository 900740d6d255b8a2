"""Alarm lifecycle against the running stack: redelivery, two notifiers, shadow conflicts, DLQ."""

from __future__ import annotations

import json
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


async def test_two_notifiers_on_one_queue_keep_one_lifecycle(res: Resources) -> None:
    trains = [_train() for _ in range(3)]
    keys = ["limit:bearing_temp_c", "model:axle_vibration_g"]
    ladder = [Severity.WARNING, Severity.INFO, Severity.WARNING, Severity.CRITICAL,
              Severity.WARNING, Severity.CRITICAL, Severity.INFO]
    sent = [anomaly(t, k, sev) for t in trains for k in keys for sev in ladder]
    redelivered = sent[::5]
    seen_a, seen_b = Seen(), Seen()
    total = len(sent) + len(redelivered)
    async with running(res.settings(), seen_a), running(res.settings(), seen_b):
        res.send(*sent)
        res.send(*redelivered)
        assert await Seen.until_all(seen_a, seen_b, total, 30)
    assert seen_a.items and seen_b.items, "both notifiers took part"
    events = res.events()
    for train in trains:
        items = res.items(train)
        assert sorted(i["alert_key"] for i in items) == sorted(keys)
        assert all(i["state"] in ("raised", "escalated") and i["severity"] == 3 for i in items)
        for key in keys:
            # Two tasks append in any order; the record versions order the transitions.
            mine = sorted((e for e in events if e["train"] == train and e["alert_key"] == key),
                          key=lambda e: e.get("version", 1))
            versions = [e.get("version", 1) for e in mine]
            assert versions == list(range(1, len(mine) + 1)), f"double or lost transition: {mine}"
            assert [e["state"] for e in mine][:1] == ["raised"]
            assert [e["state"] for e in mine].count("raised") == 1
            severities = [e["severity"] for e in mine]
            assert severities == sorted(severities) and len(set(severities)) == len(severities)
            assert len({e["alarm_id"] for e in mine}) == 1
        desired = res.shadow(train)["state"]["desired"]["alerts"]
        assert len(desired["open"]) == 2 and desired["omitted"] == 0
        assert {a["severity"] for a in desired["open"]} == {3}


async def test_shadow_version_conflict_is_retried_and_wins(res: Resources) -> None:
    from structlog.testing import capture_logs

    train, seen = _train(), Seen()
    iot = client(res.env, "iot-data", res.env["RAILPULSE_IOT_DATA_ENDPOINT"])
    async with running(res.settings(), seen):
        res.send(anomaly(train, "limit:a", Severity.WARNING))
        assert await seen.until(lambda s: len(s) == 1, 10)
        # Another writer moves the version under the notifier's cached expectation.
        iot.update_thing_shadow(thingName=train, payload=b'{"state":{"desired":{"mode":"eco"}}}')
        with capture_logs() as logs:
            res.send(anomaly(train, "limit:b", Severity.CRITICAL))
            assert await seen.until(lambda s: len(s) == 2, 10)
    assert any(e["event"] == "shadow.conflict" for e in logs)
    assert seen.items[1].shadow_written
    doc = res.shadow(train)
    assert doc["version"] == 3
    assert doc["state"]["desired"]["mode"] == "eco"
    assert [a["alert_key"] for a in doc["state"]["desired"]["alerts"]["open"]] == ["limit:b", "limit:a"]


async def test_oversized_set_of_alerts_is_truncated_with_a_count(res: Resources) -> None:
    train, seen = _train(), Seen()
    keys = [f"limit:channel_{i:03d}" for i in range(120)]
    async with running(res.settings(), seen):
        res.send(*[anomaly(train, k, Severity.CRITICAL if i % 10 == 0 else Severity.WARNING)
                   for i, k in enumerate(keys)])
        assert await seen.until(lambda s: len(s) == len(keys), 30)
    doc = res.shadow(train)
    alerts = doc["state"]["desired"]["alerts"]
    assert alerts["omitted"] > 0
    assert len(alerts["open"]) + alerts["omitted"] == len(keys)
    severities = [a["severity"] for a in alerts["open"]]
    assert severities[:12] == [3] * 12 and severities == sorted(severities, reverse=True)
    # The limit covers desired + reported (GetThingShadow adds the delta on top).
    state = {k: v for k, v in doc["state"].items() if k in ("desired", "reported")}
    assert len(json.dumps(state, separators=(",", ":"))) <= 8 * 1024


async def test_poison_message_reaches_the_dlq_without_blocking_others(res: Resources) -> None:
    train, seen = _train(), Seen()
    sqs = client(res.env, "sqs")
    async with running(res.settings(), seen):
        sqs.send_message(QueueUrl=res.queue_url, MessageBody="{not json")
        res.send(anomaly(train))
        assert await seen.until(lambda s: len(s) == 1, 10)

        def in_dlq() -> bool:
            got = sqs.receive_message(QueueUrl=res.dlq_url, WaitTimeSeconds=0,
                                      VisibilityTimeout=0).get("Messages", [])
            return any(m["Body"] == "{not json" for m in got)

        assert await until(in_dlq, 20, every=0.5)


async def test_quiet_alarm_clears_and_leaves_the_desired_state(res: Resources) -> None:
    train, seen = _train(), Seen()
    async with running(res.settings(clear_after_s=1.0), seen):
        res.send(anomaly(train))
        assert await seen.until(lambda s: len(s) == 1, 10)
        assert await until(lambda: res.items(train)[0]["state"] == "cleared", 10)
        assert await until(
            lambda: res.shadow(train)["state"]["desired"]["alerts"] == {"open": [], "omitted": 0}, 5)
    states = [e["state"] for e in res.events() if e["train"] == train]
    assert states == ["raised", "cleared"]


async def test_transient_failure_is_retried_and_the_event_is_not_lost(res: Resources) -> None:
    from structlog.testing import capture_logs

    train, seen = _train(), Seen()
    stream = f"{res.stream}-late"  # does not exist yet: appending the transition fails
    kinesis = client(res.env, "kinesis")
    with capture_logs() as logs:
        async with running(res.settings(stream_events=stream), seen):
            res.send(anomaly(train))
            assert await until(lambda: any(
                e["event"] == "message.failed" and e["kind"] == "transient" for e in logs), 20)
            kinesis.create_stream(StreamName=stream, ShardCount=1)
            assert await seen.until(lambda s: len(s) == 1, 30)
    try:
        [done] = seen.items
        assert done.duplicate  # the state was written by the failed attempt ...
        items = res.items(train)
        assert len(items) == 1 and items[0]["version"] == 1
        # ... and its transition was appended on the retry, once, with the shadow written.
        shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = kinesis.get_records(ShardIterator=it)["Records"]
        assert [json.loads(r["Data"])["state"] for r in records] == ["raised"]
        assert res.shadow(train)["state"]["desired"]["alerts"]["open"]
    finally:
        kinesis.delete_stream(StreamName=stream)
