"""Signature Version 4 check for the data-plane stand-in, as AWS IoT's data endpoint does it.

The signature is recomputed with botocore's own signer (`SigV4Auth` over an `AWSRequest` built
from what arrived) and compared in constant time. What AWS checks, checked here too: the access
key is the one the stack issued, the credential scope names the stack's region and the signing
name `iotdata` (botocore's for `iot-data`), the scope's date is the request's, the request time is
within 5 minutes of now, and the body is the one signed (never `UNSIGNED-PAYLOAD`). Every refusal
is an `AuthError` with AWS's wording; `http.py` answers it with 403 `ForbiddenException`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

__all__ = ["SERVICE", "SKEW", "AuthError", "SigningKey", "verify"]

SERVICE = "iotdata"
"""The SigV4 signing name of `iot-data` (its endpoint prefix is `data-ats.iot`)."""
SKEW = dt.timedelta(minutes=5)
"""How far the request time may be from the server's clock (AWS allows 5 minutes)."""

_ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class AuthError(Exception):
    """The request is not signed by the stack's credentials; `message` is AWS's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The credentials the stack issued, and where they are valid."""

    access_key: str
    secret_key: str
    region: str

    def __repr__(self) -> str:
        return f"SigningKey(access_key={self.access_key!r}, region={self.region!r})"


def verify(
    key: SigningKey,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
) -> None:
    """Raise AuthError unless the request (`target` = path and query as sent) is signed by `key`."""
    lower = {name.lower(): value for name, value in headers.items()}
    match = _AUTH.match(lower.get("authorization", "").strip())
    if match is None:
        if "authorization" not in lower:
            raise AuthError("Missing Authentication Token")
        raise AuthError(f"Authorization header requires the {_ALGORITHM} algorithm")
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("Credential should be scoped to a valid region, service and aws4_request")
    access_key, day, region, service, _ = parts
    if not hmac.compare_digest(access_key.encode(), key.access_key.encode()):
        raise AuthError("The security token included in the request is invalid.")
    if region != key.region:
        raise AuthError(f"Credential should be scoped to a valid region, not '{region}'.")
    if service != SERVICE:
        raise AuthError(f"Credential should be scoped to correct service: '{SERVICE}'.")

    stamp = lower.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError("Authorization requires an X-Amz-Date header (yyyyMMddTHHmmssZ)") from None
    if day != stamp[:8]:
        raise AuthError(f"Date in Credential scope does not match YYYYMMDD from X-Amz-Date: {day}")
    if abs(now - when) > SKEW:
        raise AuthError(
            f"Signature expired: {stamp} is now earlier or later than "
            f"{now.strftime(SIGV4_TIMESTAMP)} by more than 5 minutes."
        )

    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise AuthError("SignedHeaders must include host and x-amz-date")
    missing = [name for name in signed if name not in lower]
    if missing:
        raise AuthError(f"Signed header(s) not in the request: {', '.join(missing)}")
    content_sha = lower.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        raise AuthError("The provided 'x-amz-content-sha256' header does not match the body")

    # The signer signs every header it is given: give it exactly the ones the client signed.
    request = AWSRequest(
        method=method,
        url=f"http://{lower['host']}{target}",
        headers={name: lower[name] for name in signed},
        data=body,
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key.access_key, key.secret_key), SERVICE, key.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise AuthError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
