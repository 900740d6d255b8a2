"""moto behind our WSGI wrapper reads a large request body whole and intact (issue 18: the body
is read in one go, not 64 KB at a time while holding the GIL)."""

from __future__ import annotations

import os

import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from railpulse_devstack.moto_server import _never_empty

AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=x",
    "Host": "localhost",
}


def test_a_large_put_is_stored_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = Client(_never_empty(DomainDispatcherApplication(create_backend_app)))
    assert client.put("/body-bucket", headers=AUTH).status_code == 200
    body = os.urandom(3 * 1024 * 1024 + 17)
    put = client.put("/body-bucket/snap.bin", data=body, headers=AUTH)
    assert put.status_code == 200
    got = client.get("/body-bucket/snap.bin", headers=AUTH)
    assert got.status_code == 200 and got.data == body
    head = client.head("/body-bucket/snap.bin", headers=AUTH)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(body))
