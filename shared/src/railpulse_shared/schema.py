"""JSON Schemas of the contracts, and the compatibility rule that guards them.

`python -m railpulse_shared.schema` (`make schemas`) writes one file per contract into
`shared/schemas/` (`frame.v1.json`, `RuleEnvelope.json`, ...). A committed schema only changes
compatibly: new properties must be optional (have defaults); no property is removed or changes
type; enums may gain values. Anything else needs a new versioned Struct (`frame.v2`), and the tool
refuses to overwrite the old file. tests/contracts checks the committed files against the code.

One change in between is told apart: a *narrowed bound* (a `maximum`, `maxLength`, `pattern`,
`maxProperties`, ... added to an existing field, or made stricter). Old readers still read every
new event; new readers refuse old events outside the bound. That is a deliberate decision, not an
accident, so the tool refuses it too unless `--allow-narrowing` is given: it keeps the version
when the values excluded were never usable data (a `seq` past 2^63 that no consumer can store, a
channel name with a NUL that breaks the warehouse). A bound that is removed or widened is breaking.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from railpulse_shared.contracts import EVENT_TYPES, WIRE_TYPES

__all__ = ["SCHEMA_DIR", "breaking_changes", "current_schemas", "narrowed_bounds", "schema_name"]

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


_UPPER = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxProperties", "maxItems"})
_LOWER = frozenset({"minimum", "exclusiveMinimum", "minLength", "minProperties", "minItems"})
_OPAQUE = frozenset({"pattern", "propertyNames"})
"""Bounds whose strictness cannot be compared: adding one narrows, changing one breaks."""


class _Changes:
    def __init__(self) -> None:
        self.breaking: list[str] = []
        self.narrowed: list[str] = []


def _bound(key: str, old: Any, new: Any, path: str, changes: _Changes) -> None:
    """A bound keyword present on one side or both."""
    where = f"{path}: `{key}`"
    if key not in new:
        changes.breaking.append(f"{where} removed")
    elif key not in old:
        changes.narrowed.append(f"{where} added: {new[key]!r}")
    elif old[key] == new[key]:
        return
    elif (key in _UPPER and new[key] < old[key]) or (key in _LOWER and new[key] > old[key]):
        changes.narrowed.append(f"{where} {old[key]!r} became {new[key]!r}")
    else:
        changes.breaking.append(f"{where} {old[key]!r} became {new[key]!r}")


def _compare(old: Any, new: Any, path: str, changes: _Changes) -> None:
    problems = changes.breaking
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
                    _compare(prop, new["properties"][name], f"{path}.{name}", changes)
            added_required = set(new.get("required", ())) - set(old.get("required", ()))
            problems.extend(f"{path}.{name}: new required field" for name in sorted(added_required))
            return
        keys = (set(old) | set(new)) - {"title", "description", "default"}
        for key in sorted(keys):
            if key in _UPPER or key in _LOWER or key in _OPAQUE:
                _bound(key, old, new, path, changes)
            elif key not in old or key not in new:
                problems.append(f"{path}: `{key}` added or removed")
            else:
                _compare(old[key], new[key], f"{path}/{key}", changes)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _compare(a, b, f"{path}[{i}]", changes)
        return
    if old != new:
        problems.append(f"{path}: {old!r} became {new!r}")


def _changes(old: dict[str, Any], new: dict[str, Any]) -> _Changes:
    changes = _Changes()
    _compare(_resolve(old, old.get("$defs", {})), _resolve(new, new.get("$defs", {})), "$", changes)
    return changes


def breaking_changes(
    old: dict[str, Any], new: dict[str, Any], *, allow_narrowing: bool = False
) -> list[str]:
    """Why `new` cannot replace `old` under the same version (empty when compatible).
    A narrowed bound counts unless `allow_narrowing` (see the module docstring)."""
    changes = _changes(old, new)
    return changes.breaking if allow_narrowing else changes.breaking + changes.narrowed


def narrowed_bounds(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The bounds `new` adds to or tightens on `old`'s fields."""
    return _changes(old, new).narrowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m railpulse_shared.schema",
        description="Write the contracts' JSON Schemas to shared/schemas/, refusing breaking "
        "changes to an existing version.",
    )
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="output folder")
    parser.add_argument(
        "--allow-narrowing",
        action="store_true",
        help="keep the version when a bound is added or tightened on an existing field "
        "(a deliberate decision: only when the values excluded were never usable)",
    )
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    status = 0
    for name, schema in current_schemas().items():
        path = args.dir / f"{name}.json"
        if path.exists():
            old = json.loads(path.read_text())
            problems = breaking_changes(old, schema, allow_narrowing=args.allow_narrowing)
            for narrowed in narrowed_bounds(old, schema) if args.allow_narrowing else ():
                print(f"{path.name}: narrowed {narrowed}", file=sys.stderr)
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
