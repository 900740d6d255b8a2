"""The warehouse views are the dbt models, and the data dictionary describes every column.

One definition: the `.sql` models in the archiver's package data are what dbt runs and what the
warehouse and DuckDB create (`views.py`); `sources.yml` and `models.yml` describe exactly the
columns the lake's schemas and the views have; docs/data.md is generated from them and current.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from railpulse_archiver import datadict
from railpulse_archiver.query import connect_lake
from railpulse_archiver.sql_source import LakeSource
from railpulse_archiver.tables import TABLES
from railpulse_archiver.views import DBT_PROJECT, VIEWS, view_names, view_select

DATA_MD = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_every_model_is_a_view_over_lake_tables_only() -> None:
    assert view_names() == ["alert_lifecycle", "data_completeness", "train_channel_hourly"]
    for name in view_names():
        select = view_select(name)
        assert "{{" not in select and "{%" not in select
        assert VIEWS[name].startswith(f"CREATE OR REPLACE VIEW {name} AS\n")
    assert "FROM telemetry" in view_select("data_completeness")


def test_the_yml_describes_exactly_the_columns_of_every_table_and_view(tmp_path: Path) -> None:
    described = datadict.described_columns()
    for name, table in TABLES.items():
        assert [c["name"] for c in described[name]] == table.schema.names, name
    con = connect_lake(str(tmp_path))  # no objects: empty views with the tables' columns
    LakeSource(con, with_views=True)
    for name in view_names():
        columns = [row[0] for row in con.execute(f"DESCRIBE {name}").fetchall()]
        assert [c["name"] for c in described[name]] == columns, name
    assert all(c.get("description") for columns in described.values() for c in columns)


def test_the_dbt_project_names_the_lake_tables_and_the_models() -> None:
    project = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())
    assert project["model-paths"] == ["models"] and project["profile"] == "railpulse"
    profiles = yaml.safe_load((DBT_PROJECT / "profiles.yml").read_text())
    assert profiles["railpulse"]["outputs"]["lake"]["type"] == "duckdb"
    sources = yaml.safe_load((DBT_PROJECT / "models" / "sources.yml").read_text())["sources"]
    assert [s["name"] for s in sources] == ["lake"]
    assert [t["name"] for t in sources[0]["tables"]] == list(TABLES)
    models = yaml.safe_load((DBT_PROJECT / "models" / "models.yml").read_text())["models"]
    assert sorted(m["name"] for m in models) == view_names()


def test_docs_data_md_is_generated_from_the_current_schemas() -> None:
    """Run `uv run python -m railpulse_archiver.datadict --write docs/data.md` if this fails."""
    assert datadict.main([str(DATA_MD)]) == 0
    text = DATA_MD.read_text()
    assert "| `bearing_temp_1` … `bearing_temp_8` | degC |" in text
    assert "| `received_ms` | bigint | ms since the Unix epoch |" in text
