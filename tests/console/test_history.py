"""History from the warehouse: optional, and graceful when it has no tables yet."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from railpulse_archiver.tables import TABLES
from railpulse_archiver.warehouse import ddl
from railpulse_console.app import create_app
from railpulse_console.console import Console
from railpulse_console.errors import WarehouseUnavailable
from railpulse_console.history import Warehouse
from railpulse_console.settings import ConsoleSettings
from railpulse_shared.contracts import AcceptedFrame, Reading


async def test_no_warehouse_configured() -> None:
    warehouse = Warehouse(None)
    with pytest.raises(WarehouseUnavailable):
        await warehouse.telemetry("train-001", 0, 1)
    assert warehouse.status == "not configured"


async def test_unreachable_warehouse() -> None:
    warehouse = Warehouse("postgresql://railpulse@127.0.0.1:1/railpulse", connect_timeout_s=1)
    with pytest.raises(WarehouseUnavailable):
        await warehouse.alarm_transitions("train-001", 0)
    assert warehouse.status.startswith("unreachable")


@pytest.fixture
def schema(stack: dict[str, str]) -> Iterator[tuple[str, str]]:
    dsn = stack["RAILPULSE_PG_DSN"]
    name = f"ctest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield dsn, name
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def _create_tables(dsn: str, schema: str, now_ms: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The archiver's own DDL: the console reads the tables exactly as the archiver makes them.
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(ddl(TABLES["telemetry"]))
        conn.execute(ddl(TABLES["alarms"]))
        for minutes in (50, 40, 30):
            ts = (now_ms - minutes * 60_000) / 1000
            conn.execute(
                "INSERT INTO telemetry (train, seq, ts, channel, value, quality) "
                "VALUES ('wh-1', 1, to_timestamp(%s), 'speed', %s, 'good')",
                (ts, float(minutes)),
            )
        raised = (now_ms - 45 * 60_000) / 1000
        for version, state, offset in ((1, "raised", 0), (2, "acknowledged", 30), (3, "cleared", 300)):
            conn.execute(
                "INSERT INTO alarms (alarm_id, train, alert_key, state, severity, changed_at, version) "
                "VALUES ('old-alarm', 'wh-1', 'limit:speed', %s, 2, to_timestamp(%s), %s)",
                (state, raised + offset, version),
            )


@pytest.mark.stack
async def test_warehouse_without_tables_degrades(schema: tuple[str, str]) -> None:
    dsn, name = schema
    warehouse = Warehouse(dsn, schema=name)
    with pytest.raises(WarehouseUnavailable, match="no telemetry table"):
        await warehouse.telemetry("wh-1", 0, 1)
    assert warehouse.status == "connected; history tables: none yet"


@pytest.mark.stack
async def test_warehouse_tables_give_history(schema: tuple[str, str]) -> None:
    dsn, name = schema
    now = int(time.time() * 1000)
    _create_tables(dsn, name, now)
    warehouse = Warehouse(dsn, schema=name)
    frames = await warehouse.telemetry("wh-1", now - 3_600_000, now - 35 * 60_000)
    assert [readings["speed"] for _, readings in frames] == [50.0, 40.0]
    transitions = await warehouse.alarm_transitions("wh-1", now - 3_600_000)
    assert [t.state.value for t in transitions] == ["raised", "acknowledged", "cleared"]


@pytest.mark.stack
def test_train_page_merges_warehouse_history(schema: tuple[str, str]) -> None:
    dsn, name = schema
    now = int(time.time() * 1000)
    _create_tables(dsn, name, now)
    console = Console(ConsoleSettings(pg_dsn=dsn, warehouse_schema=name))
    console.deliver(
        AcceptedFrame(train="wh-1", seq=9, ts_ms=now - 1000, readings={"speed": Reading(value=99.0)})
    )
    with TestClient(create_app(console, start_feeds=False), base_url="http://localhost") as client:
        detail = client.get("/api/trains/wh-1").json()
    assert detail["history"] == "stream+warehouse"
    [speed] = detail["channels"]
    assert speed["values"] == [50.0, 40.0, 30.0, 99.0]
    [alarm] = detail["alarms"]
    assert (alarm["alarm_id"], alarm["time_to_ack_ms"], alarm["time_to_clear_ms"]) == (
        "old-alarm",
        30_000,
        300_000,
    )
