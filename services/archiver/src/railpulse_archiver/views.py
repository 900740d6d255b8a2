"""The warehouse's views, defined once as the dbt models in package data (`dbt/models/*.sql`).

Each model is a `SELECT` over `{{ source('lake', '<table>') }}`. dbt-duckdb runs them over the
Parquet lake as they are; the warehouse (`railpulse load`) and DuckDB over the lake
(`railpulse query`, `railpulse report --from-lake`) get the same SQL with each `source()`
rendered to the bare table name, wrapped in `CREATE OR REPLACE VIEW`. The SQL is portable
(DuckDB, PostgreSQL, Redshift): CASE instead of FILTER, no engine-only functions.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

import jinja2

__all__ = ["DBT_PROJECT", "VIEWS", "create_view", "view_names", "view_select"]

DBT_PROJECT: Traversable = resources.files("railpulse_archiver") / "dbt"
"""The dbt project (dbt_project.yml, profiles.yml, models/)."""

_MODELS = DBT_PROJECT / "models"
_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def view_names() -> list[str]:
    """Every view, in a stable order (by name: no view reads another)."""
    return sorted(p.name.removesuffix(".sql") for p in _MODELS.iterdir() if p.name.endswith(".sql"))


def _table_name(source: str, table: str) -> str:
    if source != "lake":
        raise ValueError(f"unknown dbt source {source!r}: the views read only the lake")
    return table


def view_select(name: str) -> str:
    """The view's `SELECT`, with `source('lake', t)` as the bare table name `t`."""
    template = _jinja.from_string((_MODELS / f"{name}.sql").read_text())
    return template.render(source=_table_name, config=lambda **_: "").strip()


def create_view(name: str) -> str:
    return f"CREATE OR REPLACE VIEW {name} AS\n{view_select(name)}"


VIEWS: dict[str, str] = {name: create_view(name) for name in view_names()}
"""View name -> its `CREATE OR REPLACE VIEW` statement."""
