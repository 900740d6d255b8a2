"""cdk-nag (v3, a CDK validation plugin) with the AwsSolutions pack, and every accepted
finding acknowledged with its reason.

Wildcards (AwsSolutions-IAM5) are acknowledged one finding at a time by `DocumentedWildcards`,
and only when railpulse_deploy.wildcards documents them: the same list the tests hold every
Allow statement to, so the documentation and the check cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

import jsii
from aws_cdk import Acknowledgment, IAspect, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from railpulse_deploy.wildcards import is_documented

__all__ = [
    "DocumentedWildcards",
    "acknowledge_core",
    "acknowledge_service",
    "flatten",
    "statements",
]

# Nothing in the core stack needs an acknowledgement beyond the documented wildcards.
_CORE: dict[str, str] = {}
_SERVICE = {
    "AwsSolutions-ECS2": "The environment carries only resource names and the log level (the RAILPULSE_* contract); no secret is passed in it.",
}


def acknowledge_core(stack: Stack) -> None:
    if _CORE:
        Validations.of(stack).acknowledge(
            *(Acknowledgment(id=i, reason=r) for i, r in _CORE.items())
        )


def acknowledge_service(stack: Stack) -> None:
    Validations.of(stack).acknowledge(
        *(Acknowledgment(id=i, reason=r) for i, r in _SERVICE.items())
    )


def flatten(node: Any) -> str:
    """A CloudFormation value as one string, the way cdk-nag renders resources in finding ids."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten(i) for i in items)
        if "Fn::Sub" in node:
            return flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten(resource)}.{flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@jsii.implements(IAspect)
class DocumentedWildcards:
    """Acknowledges IAM5 findings whose every action/resource pair is documented."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, iam.CfnPolicy | iam.CfnManagedPolicy):
            docs = [node.policy_document]
        elif isinstance(node, iam.CfnRole):
            docs = [
                p["policyDocument"] for p in _as_list(Stack.of(node).resolve(node.policies) or [])
            ]
        else:
            return
        stack = Stack.of(node)
        for doc in docs:
            for st in statements(stack.resolve(doc)):
                if st.get("Effect") != "Allow":
                    continue
                actions = [str(a) for a in _as_list(st.get("Action", []))]
                for res in (flatten(r) for r in _as_list(st.get("Resource", []))):
                    if "*" in res and all(is_documented(a, res) for a in actions):
                        Validations.of(node).acknowledge(
                            Acknowledgment(
                                id=f"AwsSolutions-IAM5[Resource::{res}]",
                                reason="Documented in railpulse_deploy.wildcards: the resource cannot be narrower.",
                            )
                        )
