"""The data dictionary's tables in docs/data.md, generated from their sources of truth.

Columns and their types come from the lake's Arrow schemas (`tables.py`), their meanings and
units from the dbt project's `sources.yml` and `models.yml` (`dbt/models/`), the channels from
the channel catalogue (`channels.toml`). `python -m railpulse_archiver.datadict --write FILE`
rewrites what lies between the `<!-- generated:NAME -->` and `<!-- end:NAME -->` markers of FILE
and leaves the prose around them alone; without `--write` it exits 1 if FILE is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from railpulse_archiver.tables import TABLES, Table
from railpulse_archiver.views import DBT_PROJECT

__all__ = ["described_columns", "render_sections", "update"]

_MARKER = re.compile(r"(<!-- generated:(\w+) -->\n).*?(<!-- end:\2 -->)", re.S)


def _yaml(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DBT_PROJECT / "models" / name).read_text())
    return loaded


def described_columns() -> dict[str, list[dict[str, Any]]]:
    """Table or view name -> its columns as the dbt yml describes them, in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for source in _yaml("sources.yml")["sources"]:
        for table in source["tables"]:
            found[table["name"]] = table["columns"]
    for model in _yaml("models.yml")["models"]:
        found[model["name"]] = model["columns"]
    return found


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _unit(column: dict[str, Any]) -> str:
    return _cell((column.get("meta") or {}).get("unit", ""))


def _table_section(table: Table, spec: dict[str, Any]) -> str:
    glue = {c["Name"]: c["Type"] for c in table.glue_columns()}
    nullable = {f.name: f.nullable for f in table.schema}
    meta = spec.get("meta") or {}
    lines = [
        f"### `{table.name}`",
        "",
        _cell(spec["description"]),
        "",
        f"Grain: {meta.get('grain', '')}. Partitions: `{meta.get('partitions', '')}`. "
        f"Sorted by {', '.join(table.sort_by)} inside each object.",
        "",
        "| column | type | unit | meaning |",
        "|---|---|---|---|",
    ]
    for column in spec["columns"]:
        name = column["name"]
        kind = glue[name] + ("" if nullable[name] else ", not null")
        lines.append(f"| `{name}` | {kind} | {_unit(column)} | {_cell(column['description'])} |")
    return "\n".join(lines)


def _view_section(model: dict[str, Any]) -> str:
    lines = [
        f"### `{model['name']}`",
        "",
        _cell(model["description"]),
        "",
        "| column | unit | meaning |",
        "|---|---|---|",
    ]
    lines += [
        f"| `{c['name']}` | {_unit(c)} | {_cell(c['description'])} |" for c in model["columns"]
    ]
    return "\n".join(lines)


def _channels_section() -> str:
    import tomllib

    raw = tomllib.loads(resources.files("railpulse_shared").joinpath("channels.toml").read_text())
    lines = [
        "| channel | unit | physical range | operating range | critical range | meaning |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, spec: dict[str, Any]) -> str:
        def rng(key: str) -> str:
            low, high = spec[key]
            return f"{low:g} … {high:g}"

        return (
            f"| {name} | {spec['unit']} | {rng('physical')} | {rng('operating')} | "
            f"{rng('critical')} | {_cell(spec.get('description', ''))} |"
        )

    for stem, spec in raw.get("templates", {}).items():
        lines.append(row(f"`{stem}_1` … `{stem}_{spec['count']}`", spec))
    for name, spec in raw.get("channels", {}).items():
        lines.append(row(f"`{name}`", spec))
    return "\n".join(lines)


def render_sections() -> dict[str, str]:
    sources = {t["name"]: t for s in _yaml("sources.yml")["sources"] for t in s["tables"]}
    models = _yaml("models.yml")["models"]
    return {
        "tables": "\n\n".join(_table_section(TABLES[n], sources[n]) for n in TABLES),
        "views": "\n\n".join(_view_section(m) for m in models),
        "channels": _channels_section(),
    }


def update(text: str) -> str:
    """`text` with every generated section rewritten (a marker without a section is an error)."""
    sections = render_sections()
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in sections:
            raise KeyError(f"no generated section named {name!r}")
        seen.add(name)
        return f"{match.group(1)}{sections[name]}\n{match.group(3)}"

    updated = _MARKER.sub(replace, text)
    missing = set(sections) - seen
    if missing:
        raise KeyError(f"no markers for {', '.join(sorted(missing))}")
    return updated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m railpulse_archiver.datadict", description=__doc__
    )
    parser.add_argument("file", type=Path, help="the data dictionary (docs/data.md)")
    parser.add_argument("--write", action="store_true", help="rewrite the generated sections")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    updated = update(text)
    if args.write:
        args.file.write_text(updated)
        return 0
    if updated != text:
        print(f"{args.file} is out of date: run with --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
