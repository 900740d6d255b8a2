"""The session's synthesised assembly, shared by the deploy tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Synth", "render"]


@dataclass
class Synth:
    app: Any
    templates: dict[str, dict[str, Any]]

    def resources(self, stack: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == kind}

    def all_resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {f"{s}/{k}": v for s in self.templates for k, v in self.resources(s, kind).items()}


def render(node: Any) -> str:
    """A CloudFormation value as text: literal strings as they are, intrinsics as <...>."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return ",".join(render(n) for n in node)
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(render(i) for i in items)
        if "Ref" in node:
            return f"<{node['Ref']}>"
        if "Fn::GetAtt" in node:
            return f"<{'.'.join(map(str, node['Fn::GetAtt']))}>"
        if "Fn::ImportValue" in node:
            return f"<{render(node['Fn::ImportValue'])}>"
    return repr(node)
