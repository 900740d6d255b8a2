"""The metric contract between the deploy and the services: what the synthesised alarms and
dashboard watch (namespace `railpulse`), what the services' EMF output holds, and CloudWatch's
metric math for the expressions the alarms use (IF, FILL, arithmetic, comparisons)."""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from railpulse_shared.metric_names import METRICS

NAMESPACE = "railpulse"
Key = tuple[str, frozenset[tuple[str, str]]]
"""(metric name, its dimensions as (name, value) pairs)."""


def _dims(pairs: Iterable[Mapping[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((d["Name"], d["Value"]) for d in pairs)


def _is_service_metric(key: Key) -> bool:
    """A service's metric (a `service` dimension), not the core's shard gauge (`StreamName`)."""
    return any(d == "service" for d, _ in key[1])


def alarm_metrics(templates: Mapping[str, dict[str, Any]]) -> dict[str, set[Key]]:
    """Alarm name -> the railpulse metrics it watches (plain or inside metric math)."""
    found: dict[str, set[Key]] = {}
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::CloudWatch::Alarm":
                continue
            props = resource["Properties"]
            name = props.get("AlarmName", "?")
            keys: set[Key] = set()
            if props.get("Namespace") == NAMESPACE:
                keys.add((props["MetricName"], _dims(props.get("Dimensions", []))))
            for query in props.get("Metrics", []):
                metric = query.get("MetricStat", {}).get("Metric")
                if metric and metric.get("Namespace") == NAMESPACE:
                    keys.add((metric["MetricName"], _dims(metric.get("Dimensions", []))))
            keys = {k for k in keys if _is_service_metric(k)}
            if keys:
                found[name] = keys
    return found


def _text(node: Any) -> str:
    """A dashboard body (an Fn::Join of literals and references) as text; references as ''."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Join" in node:
        delimiter, items = node["Fn::Join"]
        return str(delimiter).join(_text(i) for i in items)
    return ""


def dashboard_metrics(templates: Mapping[str, dict[str, Any]]) -> set[Key]:
    """Every railpulse metric a dashboard graphs: `[namespace, name, dim, value, ..., {opts}]`."""
    found: set[Key] = set()
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::CloudWatch::Dashboard":
                continue
            body = json.loads(_text(resource["Properties"]["DashboardBody"]))
            for widget in body["widgets"]:
                for row in widget.get("properties", {}).get("metrics", []):
                    fields = [f for f in row if isinstance(f, str)]
                    if fields and fields[0] == ".":
                        raise AssertionError(f"abbreviated dashboard metric row: {row}")
                    if len(fields) >= 2 and fields[0] == NAMESPACE:
                        pairs = fields[2:]
                        dims = frozenset(zip(pairs[::2], pairs[1::2], strict=True))
                        if _is_service_metric((fields[1], dims)):
                            found.add((fields[1], dims))
    return found


def emitted(files: Iterable[Path]) -> dict[Key, list[float]]:
    """Every metric in EMF files, by name and dimension set, with all its values."""
    values: dict[Key, list[float]] = defaultdict(list)
    for path in files:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                if directive["Namespace"] != NAMESPACE:
                    continue
                for dim_set in directive["Dimensions"]:
                    dims = frozenset((d, str(doc[d])) for d in dim_set)
                    for m in directive["Metrics"]:
                        v = doc[m["Name"]]
                        values[(m["Name"], dims)].extend(v if isinstance(v, list) else [v])
    return values


def unlisted(names: Iterable[str]) -> set[str]:
    """Emitted names the one list (railpulse_shared.metric_names) does not hold."""
    prefixes = [m.name for m in METRICS.values() if m.prefix]
    return {n for n in names if n not in METRICS and not any(n.startswith(p) for p in prefixes)}


# -- metric math -----------------------------------------------------------------------------

_FUNCS = {
    "IF": lambda cond, a, b: a if cond else b,
    "FILL": lambda x, fill: fill if x is None else x,
}


def evaluate(expression: str, values: Mapping[str, float | None]) -> float:
    """One period's value of a CloudWatch metric-math expression over single numbers (`None`:
    no data). Supports what the alarms use: IF, FILL, + - * /, comparisons."""
    tree = ast.parse(re.sub(r"\bAND\b", "and", expression), mode="eval")

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return _FUNCS[node.func.id](*(ev(a) for a in node.args))
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            if isinstance(node.op, ast.Div):
                return a / b if b else 0.0
            return ops[type(node.op)]
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            a, b = ev(node.left), ev(node.comparators[0])
            return {
                ast.Gt: a > b, ast.GtE: a >= b, ast.Lt: a < b, ast.LtE: a <= b, ast.Eq: a == b
            }[type(node.ops[0])]
        raise ValueError(f"unsupported in metric math here: {ast.dump(node)}")

    return float(ev(tree))
