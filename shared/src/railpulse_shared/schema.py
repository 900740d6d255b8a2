"""JSON Schemas of the contracts, and the compatibility rule that guards them.

`python -m railpulse_shared.schema` (`make schemas`) writes one file per contract into
`shared/schemas/` (`frame.v1.json`, `RuleEnvelope.json`, ...). A committed schema only changes
compatibly: new properties must be optional (have defaults); no property is removed or changes
type; enums may gain values. Anything else needs a new versioned Struct (`frame.v2`), and the tool
refuses to overwrite the old file. tests/contracts checks the committed files against the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from railpulse_shared.contracts import EVENT_TYPES, WIRE_TYPES

__all__ = ["SCHEMA_DIR", "breaking_changes", "current_schemas", "schema_name"]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""`shared/schemas/` in a source checkout."""


def schema_name(type_: type[msgspec.Struct]) -> str:
    tag = type_.__struct_config__.tag
    return tag if isinstance(tag, str) else type_.__name__


def current_schemas() -> dict[str, dict[str, Any]]:
    """Every contract's JSON Schema, by file stem."""
    return {schema_name(t): msgspec.json.schema(t) for t in (*EVENT_TYPES, *WIRE_TYPES)}


def _resolve(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """Inline `$ref`s so two schemas can be compared structurally."""
    if depth > 20:
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _resolve(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
        return {k: _resolve(v, defs, depth + 1) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_resolve(v, defs, depth + 1) for v in node]
    return node


def _compare(old: Any, new: Any, path: str, problems: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        if "enum" in old and "enum" in new:
            lost = [v for v in old["enum"] if v not in new["enum"]]
            if lost:
                problems.append(f"{path}: enum values removed: {lost}")
            return
        if "properties" in old and "properties" in new:
            for name, prop in old["properties"].items():
                if name not in new["properties"]:
                    problems.append(f"{path}.{name}: removed")
                else:
                    _compare(prop, new["properties"][name], f"{path}.{name}", problems)
            added_required = set(new.get("required", ())) - set(old.get("required", ()))
            problems.extend(f"{path}.{name}: new required field" for name in sorted(added_required))
            return
        keys = (set(old) | set(new)) - {"title", "description", "default"}
        for key in sorted(keys):
            if key not in old or key not in new:
                problems.append(f"{path}: `{key}` added or removed")
            else:
                _compare(old[key], new[key], f"{path}/{key}", problems)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _compare(a, b, f"{path}[{i}]", problems)
        return
    if old != new:
        problems.append(f"{path}: {old!r} became {new!r}")


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why `new` cannot replace `old` under the same version (empty when compatible)."""
    problems: list[str] = []
    _compare(
        _resolve(old, old.get("$defs", {})), _resolve(new, new.get("$defs", {})), "$", problems
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m railpulse_shared.schema",
        description="Write the contracts' JSON Schemas to shared/schemas/, refusing breaking "
        "changes to an existing version.",
    )
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="output folder")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    status = 0
    for name, schema in current_schemas().items():
        path = args.dir / f"{name}.json"
        if path.exists():
            old = json.loads(path.read_text())
            problems = breaking_changes(old, schema)
            if problems:
                print(f"{path.name}: breaking change, give it a new version:", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                status = 1
                continue
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
