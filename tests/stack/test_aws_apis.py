"""moto behind hypercorn answers what real clients send, HEAD included (DuckDB probes objects)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import boto3
import pytest

pytestmark = pytest.mark.stack


def test_head_of_an_s3_object_answers_with_its_size(stack: dict[str, str]) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack["AWS_ENDPOINT_URL"],
        region_name=stack["AWS_REGION"],
        aws_access_key_id=stack["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["AWS_SECRET_ACCESS_KEY"],
    )
    key = f"probe/dt=2026-01-01/{uuid.uuid4().hex}.bin"
    s3.put_object(Bucket=stack["RAILPULSE_BUCKET_LAKE"], Key=key, Body=b"x" * 1234)
    assert s3.head_object(Bucket=stack["RAILPULSE_BUCKET_LAKE"], Key=key)["ContentLength"] == 1234
    # An anonymous HEAD gets what S3 answers for a private bucket, not a server error.
    request = urllib.request.Request(
        f"{stack['AWS_ENDPOINT_URL']}/{stack['RAILPULSE_BUCKET_LAKE']}/{key}", method="HEAD"
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, timeout=10)
    assert denied.value.code == 403
