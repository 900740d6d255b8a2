"""The console in a real browser (headless Chromium) against the running local stack.

Frames flow on Kinesis `telemetry` as ingest would put them; anomalies and alarm transitions are
put on Kinesis `events` as the detector and the notifier would. Each page is screenshotted under
.local/test-output/console/.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from consolehelpers import OUTPUT, Scene, aws, now_ms, put_anomaly
from playwright.sync_api import Page, expect
from waiting import wait_until

from railpulse_shared import codec
from railpulse_shared.contracts import (
    AlarmState,
    AlarmTransition,
    Anomaly,
    AnomalyKind,
    Attribution,
    RejectReason,
    Severity,
)

pytestmark = pytest.mark.stack

LATENCY_BUDGET_MS = 2000
NO_VALUE = "\u2013"  # what the pages show for "no value yet" (an en dash)


def _anomaly(train: str, channel: str, severity: Severity = Severity.CRITICAL) -> Anomaly:
    now = now_ms()
    return Anomaly(
        anomaly_id=uuid.uuid4().hex,
        train=train,
        ts_ms=now - 200,
        frame_seq=123,
        category=AnomalyKind.LIMIT,
        severity=severity,
        score=3.4,
        threshold=1.0,
        alert_key=f"limit:{channel}",
        channels=[Attribution(channel=channel, contribution=0.92, value=131.5)],
        message=f"{channel} 131.5 degC above the critical limit 120",
        model_version="test",
        detected_ms=now,
    )


def _live(page: Page) -> None:
    expect(page.locator("#live.on")).to_be_visible(timeout=10_000)


def _latency(page: Page, anomaly: Anomaly) -> int:
    seen = page.evaluate(f"RP.seen[{anomaly.anomaly_id!r}]")
    return int(seen) - anomaly.detected_ms


def test_fleet_lists_the_trains_live(scene: Scene, page: Page) -> None:
    page.goto(scene.console.url + "/")
    _live(page)
    for train in scene.trains:
        row = page.locator(f'#fleet tr[data-train="{train}"]')
        expect(row).to_have_class("online", timeout=10_000)
        expect(row.locator("td").nth(2)).to_contain_text("ago")
    page.screenshot(path=str(OUTPUT / "fleet.png"), full_page=True)


def test_anomaly_reaches_the_alert_feed_within_2s(scene: Scene, page: Page) -> None:
    page.goto(scene.console.url + "/alerts")
    _live(page)
    anomaly = _anomaly(scene.trains[1], "bearing_temp_5")
    anomaly = put_anomaly(scene.env, anomaly)
    row = page.locator(f'#feed tr[data-id="{anomaly.anomaly_id}"]')
    expect(row).to_be_visible(timeout=LATENCY_BUDGET_MS)
    latency = _latency(page, anomaly)
    scene.measurements["alert_feed_latency_ms"] = latency
    assert latency <= LATENCY_BUDGET_MS
    expect(row).to_contain_text("3.40 / 1.00")
    expect(row).to_contain_text("bearing_temp_5 92%")
    # Filtering narrows the feed to one train; the URL keeps the filter.
    other = _anomaly(scene.trains[2], "motor_temp_1", Severity.WARNING)
    other = put_anomaly(scene.env, other)
    expect(page.locator(f'#feed tr[data-id="{other.anomaly_id}"]')).to_be_visible(timeout=5000)
    page.screenshot(path=str(OUTPUT / "alerts.png"))  # the newest screenful
    page.fill("#f-train", scene.trains[2])
    expect(page.locator(f'#feed tr[data-id="{anomaly.anomaly_id}"]')).to_have_count(0)
    expect(page.locator(f'#feed tr[data-id="{other.anomaly_id}"]')).to_be_visible()
    assert f"train={scene.trains[2]}" in page.url


def test_anomaly_is_marked_on_the_trains_plot_within_2s(scene: Scene, page: Page) -> None:
    train = scene.trains[0]
    _put_alarm_history(scene, train)
    wait_until(lambda: _alarms(scene, train), timeout=10)  # the console has read them
    page.goto(f"{scene.console.url}/trains/{train}")
    _live(page)
    plot = page.locator('.plot[data-channel="bearing_temp_3"]')
    expect(plot).to_be_visible(timeout=10_000)
    assert page.locator(".plot").count() >= 30  # every catalogued channel the train sends
    anomaly = _anomaly(train, "bearing_temp_3")
    anomaly = put_anomaly(scene.env, anomaly)
    marker = plot.locator(f'.marker[data-anomaly-id="{anomaly.anomaly_id}"]')
    expect(marker).to_be_visible(timeout=LATENCY_BUDGET_MS)
    latency = _latency(page, anomaly)
    scene.measurements["train_plot_latency_ms"] = latency
    assert latency <= LATENCY_BUDGET_MS
    expect(marker).to_contain_text("3.4")
    assert "bearing_temp_3 92%" in (marker.get_attribute("title") or "")
    expect(page.locator(f'#anomalies tr[data-id="{anomaly.anomaly_id}"]')).to_contain_text(
        "3.40 / 1.00"
    )
    # The alarm history shows time to acknowledge and to clear.
    alarm = page.locator('#alarms tr[data-alarm="ct-alarm-1"]')
    expect(alarm).to_contain_text("cleared")
    expect(alarm).to_contain_text("12 s")
    expect(alarm).to_contain_text("1 min 30 s")
    # Live points keep arriving on the plot.
    before = plot.locator(".latest").inner_text()
    wait_until(lambda: plot.locator(".latest").inner_text() != before, timeout=5)
    page.screenshot(path=str(OUTPUT / "train.png"), full_page=True)


def test_data_health(scene: Scene, page: Page) -> None:
    kinesis, sqs = aws(scene.env, "kinesis"), aws(scene.env, "sqs")
    # A checkpoint a few records behind the tip: the consumer's lag is the age of the next one.
    put = kinesis.put_record(
        StreamName=scene.env["RAILPULSE_STREAM_TELEMETRY"], Data=b"{}", PartitionKey=scene.trains[0]
    )
    aws(scene.env, "dynamodb").put_item(
        TableName=scene.lease_table,
        Item={
            "leaseKey": {"S": put["ShardId"]},
            "checkpoint": {"S": put["SequenceNumber"]},
            "leaseOwner": {"S": "worker-1"},
        },
    )
    url = sqs.get_queue_url(QueueName=scene.dead_letters)["QueueUrl"]
    for reason in (RejectReason.MALFORMED_JSON, RejectReason.MALFORMED_JSON, RejectReason.OVERSIZED):
        sqs.send_message(
            QueueUrl=url,
            MessageBody="{}",
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason.value}},
        )
    page.goto(scene.console.url + "/health")
    _live(page)
    wait_until(lambda: _number(page.inner_text("#fps")) >= 3.0, timeout=10)  # 3 trains, 2 Hz
    telemetry = page.locator('#streams tr[data-stream="telemetry"]')
    expect(telemetry).to_contain_text("ok")
    consumer = page.locator(f'#consumers tr[data-application="{scene.lease_table}"]')
    expect(consumer.locator(".lag")).not_to_have_text(NO_VALUE, timeout=10_000)
    reasons = page.locator(f'#queues tr[data-queue="{scene.dead_letters}"] .reasons')
    expect(reasons).to_have_text("malformed_json: 2, oversized: 1", timeout=10_000)
    expect(page.locator('#queues tr[data-queue="rejects"]')).to_contain_text("redrive policy")
    expect(page.locator("#warehouse")).not_to_have_text(NO_VALUE)
    page.screenshot(path=str(OUTPUT / "health.png"), full_page=True)


def _alarms(scene: Scene, train: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{scene.console.url}/api/trains/{train}?series=0") as response:
        alarms: list[dict[str, object]] = json.load(response)["alarms"]
    return [a for a in alarms if a["state"] == "cleared"]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # not rendered yet
        return 0.0


def _put_alarm_history(scene: Scene, train: str) -> None:
    raised = now_ms() - 120_000
    steps = [
        (1, AlarmState.RAISED, raised),
        (2, AlarmState.ACKNOWLEDGED, raised + 12_000),
        (3, AlarmState.CLEARED, raised + 90_000),
    ]
    kinesis = aws(scene.env, "kinesis")
    for version, state, at_ms in steps:
        transition = AlarmTransition(
            alarm_id="ct-alarm-1",
            train=train,
            alert_key="limit:bearing_temp_3",
            state=state,
            severity=Severity.CRITICAL,
            at_ms=at_ms,
            version=version,
        )
        kinesis.put_record(
            StreamName=scene.env["RAILPULSE_STREAM_EVENTS"],
            Data=codec.encode(transition),
            PartitionKey=train,
        )
