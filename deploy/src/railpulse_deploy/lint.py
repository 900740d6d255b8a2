"""cfn-lint exceptions, each on the one resource it concerns and with its reason."""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

__all__ = ["lint_exception"]


def lint_exception(construct: IConstruct, rule: str, reason: str) -> None:
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(resource, CfnResource), (
        f"{construct.node.path} has no CloudFormation resource"
    )
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": [rule]}})
    resource.add_metadata("railpulse:lint-exception", f"{rule}: {reason}")
