"""moto behind hypercorn answers what real clients send, HEAD included (DuckDB probes objects)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import boto3
import pytest

from railpulse_devstack.env import s3_endpoint

pytestmark = pytest.mark.stack


def _s3(stack: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint(stack),
        region_name=stack["AWS_REGION"],
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
    )


def test_head_of_an_s3_object_answers_with_its_size(stack: dict[str, str]) -> None:
    s3 = _s3(stack)
    key = f"probe/dt=2026-01-01/{uuid.uuid4().hex}.bin"
    s3.put_object(Bucket=stack["RAILPULSE_BUCKET_LAKE"], Key=key, Body=b"x" * 1234)
    assert s3.head_object(Bucket=stack["RAILPULSE_BUCKET_LAKE"], Key=key)["ContentLength"] == 1234
    # An anonymous HEAD gets what S3 answers for a private bucket, not a server error.
    request = urllib.request.Request(
        f"{s3_endpoint(stack)}/{stack['RAILPULSE_BUCKET_LAKE']}/{key}", method="HEAD"
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=10)
    assert denied.value.code == 403


def test_an_object_larger_than_hypercorns_default_body_limit_is_stored(
    stack: dict[str, str],
) -> None:
    """hypercorn refuses WSGI bodies over 16 MiB by default; S3 takes 5 GiB in one PutObject (a
    detector's model snapshot, about 1 MB a train, outgrows the default)."""
    s3 = _s3(stack)
    key = f"probe/{uuid.uuid4().hex}.bin"
    size = 17 * 1024 * 1024
    s3.put_object(Bucket=stack["RAILPULSE_BUCKET_STATE"], Key=key, Body=b"s" * size)
    assert s3.head_object(Bucket=stack["RAILPULSE_BUCKET_STATE"], Key=key)["ContentLength"] == size
    s3.delete_object(Bucket=stack["RAILPULSE_BUCKET_STATE"], Key=key)
