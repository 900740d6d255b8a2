"""Are the KCL consumers really consuming? A lease left by a stopped worker still names its owner
until it expires; a lease whose counter moved since a snapshot was renewed by a live worker."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LeaseSnapshot", "lease_counters", "leases_renewed"]

LeaseSnapshot = dict[tuple[str, str], tuple[str | None, int]]
"""(application, lease key) -> (owner, lease counter)."""


def lease_counters(env: dict[str, str], applications: Iterable[str]) -> LeaseSnapshot:
    import boto3
    from botocore.exceptions import ClientError

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
    out: LeaseSnapshot = {}
    for app in applications:
        try:
            items = ddb.scan(TableName=app).get("Items", [])
        except ClientError:
            continue
        for item in items:
            owner = item.get("leaseOwner", {}).get("S")
            counter = int(item.get("leaseCounter", {}).get("N", "0"))
            out[(app, item["leaseKey"]["S"])] = (owner, counter)
    return out


def leases_renewed(env: dict[str, str], applications: Iterable[str], before: LeaseSnapshot) -> bool:
    """Every application has leases, each owned and renewed (or created) since `before`."""
    apps = list(applications)
    now = lease_counters(env, apps)
    return {app for app, _ in now} >= set(apps) and all(
        owner is not None and (key not in before or counter > before[key][1])
        for key, (owner, counter) in now.items()
    )
