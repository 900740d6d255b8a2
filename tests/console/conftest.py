"""Fixtures for the console's browser tests against the running local stack.

One console process, one frame pump and one headless Chromium per module: the browser is the
slow part, so the tests share it and each opens its own page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from consolehelpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    OUTPUT,
    ConsoleProcess,
    FramePump,
    Scene,
    aws,
)
from playwright.sync_api import Browser, Page, sync_playwright


@pytest.fixture(scope="module")
def scene(stack: dict[str, str]) -> Iterator[Scene]:
    run = uuid.uuid4().hex[:6]
    trains = [f"ct{run}-{i}" for i in range(1, 4)]
    ddb, sqs = aws(stack, "dynamodb"), aws(stack, "sqs")
    # A KCL-style lease table and a terminal dead-letter queue of this run only: the console
    # is pointed at them, so the shared stack's own resources are left as they are.
    lease_table, dead_letters = f"ctest-{run}", f"ctest-{run}-dlq"
    ddb.create_table(
        TableName=lease_table,
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_url = sqs.create_queue(QueueName=dead_letters)["QueueUrl"]
    pump = FramePump(stack, trains, period_s=0.5)
    pump.backfill(600)
    console = ConsoleProcess(
        stack,
        OUTPUT / "console.log",
        RAILPULSE_KCL_CONSUMERS=f"{lease_table}={stack['RAILPULSE_STREAM_TELEMETRY']}",
        RAILPULSE_DEAD_LETTER_QUEUES=f"{stack['RAILPULSE_QUEUE_REJECTS']},{dead_letters}",
        RAILPULSE_QUEUES_POLL_S="1",
        RAILPULSE_LAG_POLL_S="1",
    )
    pump.start()
    scene = Scene(stack, run, trains, console, pump, lease_table, dead_letters)
    try:
        yield scene
    finally:
        pump.stop()
        console.stop()
        ddb.delete_table(TableName=lease_table)
        sqs.delete_queue(QueueUrl=queue_url)
        if scene.measurements:
            (OUTPUT / "measurements.json").write_text(json.dumps(scene.measurements, indent=2))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
