"""The moto stand-in finds a host's service once (issue 18: moto searched for it on every request,
a sixth of its time at 100 trains), still routes each API where moto routes it, and sums up what
it served (`moto.requests`)."""

from __future__ import annotations

import json
from typing import Any

import moto.backends
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from structlog.testing import capture_logs
from werkzeug.test import Client

from railpulse_devstack import moto_server


def signed(service: str, target: str) -> dict[str, str]:
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/"
        "aws4_request, SignedHeaders=host, Signature=x",
        "Host": "localhost",
        "X-Amz-Target": target,
        "Content-Type": "application/x-amz-json-1.1",
    }


def test_each_api_goes_where_moto_sends_it_and_each_host_is_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # The stand-in replaces both for its process: here they are put back after the test.
    monkeypatch.setattr(moto.backends, "list_of_moto_modules", moto.backends.list_of_moto_modules)
    looked: list[str | None] = []
    find = DomainDispatcherApplication.get_backend_for_host

    def counted(self: DomainDispatcherApplication, host: str | None) -> Any:
        looked.append(host)
        return find(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counted)
    monkeypatch.setattr(moto_server, "TALLY_EVERY_S", 0.0)  # a summary after every request
    moto_server._route_once_per_host()
    client = Client(moto_server._never_empty(DomainDispatcherApplication(create_backend_app)))

    with capture_logs() as logs:
        for _ in range(3):
            queue = client.post(
                "/", headers=signed("sqs", "AmazonSQS.CreateQueue"), data='{"QueueName": "q"}'
            )
            assert queue.status_code == 200 and json.loads(queue.data)["QueueUrl"].endswith("/q")
            streams = client.post(
                "/", headers=signed("kinesis", "Kinesis_20131202.ListStreams"), data="{}"
            )
            assert streams.status_code == 200 and "StreamNames" in json.loads(streams.data)

    assert sorted(looked, key=str) == sorted(
        [None, "sqs.us-east-1.amazonaws.com", "kinesis.us-east-1.amazonaws.com"], key=str
    ), "each host's service was looked for once, not once a request"
    summaries = [entry for entry in logs if entry["event"] == "moto.requests"]
    assert [s["top"][0]["op"] for s in summaries[:2]] == [
        "AmazonSQS.CreateQueue",
        "Kinesis_20131202.ListStreams",
    ]
    assert all(s["requests"] == 1 and s["top"][0]["n"] == 1 for s in summaries)
