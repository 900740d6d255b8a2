"""Every `*` an Allow statement may carry, and why it cannot be narrower.

The tests fail on any Allow statement with a wildcard action or resource that matches none of
these, and the cdk-nag AwsSolutions-IAM5 suppressions are generated from the same list, so the
documentation and the check cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DOCUMENTED_WILDCARDS", "is_documented"]

# (pattern over the rendered action or resource, reason)
DOCUMENTED_WILDCARDS: Final[tuple[tuple[str, str], ...]] = (
    (
        r"^s3:PutObject@.*:::railpulse-state/rejects/shardId-\*$",
        "Ingest keeps the bytes of rejects too large for SQS under rejects/<shard id>/ (shard "
        "ids appear with resharding); the prefix `shardId-` keeps it off the consumers' "
        "rejects/<consumer>/ prefixes.",
    ),
    (
        r"^logs:(CreateLogGroup|CreateLogStream|DescribeLogStreams|PutLogEvents)@.*:log-group:emf/logs/default:log-stream:\*$",
        "The KCL tasks' CloudWatch agent sidecar writes EMF to its default log group, one log "
        "stream per agent with a generated name; the group is the agent's only one.",
    ),
    (
        r"^ecr:GetAuthorizationToken@\*$",
        "ecr:GetAuthorizationToken has no resource-level permissions; the image pull itself is "
        "scoped to the service's repository.",
    ),
    (
        r"^cloudwatch:PutMetricData@\*$",
        "PutMetricData has no resource-level permissions; the statement is limited by a "
        "cloudwatch:namespace condition to the railpulse namespace.",
    ),
    (
        r"^(s3:PutObject|s3:GetObject|s3:DeleteObject|s3:AbortMultipartUpload)@.*(/[A-Za-z0-9_.-]+)*/\*$",
        "S3 object actions name objects; keys are generated (dt=/hour= partitions, snapshots), "
        "so access is scoped to the service's key prefix in one bucket.",
    ),
    (
        r"^(iot:UpdateThingShadow|iot:GetThingShadow)@.*:thing/\*$",
        "The notifier writes the shadow of whichever train raised the alert; trains are added "
        "without redeploying, so the resource is every thing in this account and region.",
    ),
    (
        r"^logs:(CreateLogStream|PutLogEvents|DescribeLogStreams)@.*log-group:.*:\*$",
        "Log streams are created per task at run time; the resource is the service's own log "
        "group (the ':*' names its streams).",
    ),
    (
        r"^kms:\*@\*$",
        "The key policy's default statement gives the account root full control of the key, "
        "so the key can never become unmanageable; IAM policies then grant narrower use.",
    ),
    (
        r"^kms:(Decrypt|GenerateDataKey)@\*$",
        "In a key policy the resource '*' means this key; the statement lets the CloudWatch "
        "alarms service publish to the encrypted alarm topic.",
    ),
)

_COMPILED = tuple((re.compile(p), reason) for p, reason in DOCUMENTED_WILDCARDS)


def is_documented(action: str, resource: str) -> bool:
    """True when a wildcard in `action@resource` is one of the documented ones."""
    probe = f"{action}@{resource}"
    return any(p.search(probe) for p, _ in _COMPILED)
