"""The data-plane stand-in's SigV4 check, against requests signed by botocore's own signer."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from railpulse_devstack.iot.sigv4 import SERVICE, AuthError, SigningKey, verify

KEY = SigningKey("AKIDRAILPULSE", "s3cret-issued-by-the-stack", "us-east-1")
NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
HOST = "127.0.0.1:4580"
TARGET = "/things/train-001/shadow?name=alerts"
BODY = json.dumps({"state": {"desired": {"alerts": {"a1": {"severity": "critical"}}}}}).encode()


def _signed(
    *,
    secret: str = KEY.secret_key,
    access_key: str = KEY.access_key,
    region: str = KEY.region,
    service: str = SERVICE,
    at: dt.datetime = NOW,
    target: str = TARGET,
    body: bytes = BODY,
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=f"http://{HOST}{target}", data=body)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(Credentials(access_key, secret), service, region).add_auth(request)
    return {"Host": HOST, **dict(request.headers.items())}


def _reason(headers: dict[str, str], *, body: bytes = BODY, target: str = TARGET) -> str:
    with pytest.raises(AuthError) as err:
        verify(KEY, "POST", target, headers, body, NOW)
    return err.value.message


def test_a_request_signed_with_the_issued_credentials_passes() -> None:
    verify(KEY, "POST", TARGET, _signed(), BODY, NOW)
    verify(KEY, "POST", TARGET, _signed(at=NOW - dt.timedelta(minutes=4)), BODY, NOW)


def test_a_topic_with_escaped_characters_verifies() -> None:
    target = "/topics/%24aws/things/train-001/shadow/update?qos=1&retain=true"
    verify(KEY, "POST", target, _signed(target=target), BODY, NOW)


def test_no_signature_is_refused() -> None:
    assert _reason({"Host": HOST}) == "Missing Authentication Token"
    assert "algorithm" in _reason({"Host": HOST, "Authorization": "Basic dXNlcjpwdw=="})


def test_a_wrong_secret_is_refused() -> None:
    assert "signature we calculated does not match" in _reason(_signed(secret="testing"))


def test_an_unknown_access_key_is_refused() -> None:
    assert "security token" in _reason(_signed(access_key="testing"))


def test_the_wrong_region_or_service_is_refused() -> None:
    assert "region" in _reason(_signed(region="eu-west-1"))
    assert "service" in _reason(_signed(service="iot"))


def test_a_request_older_or_newer_than_five_minutes_is_refused() -> None:
    assert "Signature expired" in _reason(_signed(at=NOW - dt.timedelta(minutes=5, seconds=1)))
    assert "Signature expired" in _reason(_signed(at=NOW + dt.timedelta(minutes=6)))


def test_a_changed_body_path_or_header_is_refused() -> None:
    forged = BODY.replace(b"critical", b"info")
    assert "does not match" in _reason(_signed(), body=forged)
    assert "does not match" in _reason(_signed(), target="/things/train-002/shadow?name=alerts")
    moved = {**_signed(), "Host": "evil.example:4580"}
    assert "does not match" in _reason(moved)


def test_an_unsigned_payload_is_refused() -> None:
    headers = {**_signed(), "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    assert "x-amz-content-sha256" in _reason(headers)
