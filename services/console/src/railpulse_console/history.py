"""History from the warehouse (PostgreSQL locally, Redshift in AWS), when it has the tables.

Optional by design: the console works from the streams alone, and the archiver's tables may not
exist yet. Tables are found by name (`telemetry`, `alarms`) in any schema, with the columns the
archiver's lake layout gives them (long telemetry: train, ts, channel, value), in the schema
`RAILPULSE_WAREHOUSE_SCHEMA` names or else the first that has them. Any failure —
no DSN, no server, no table, another shape — is `WarehouseUnavailable`: the page shows what the
streams hold and says so.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import structlog
from psycopg import sql

from railpulse_console.errors import WarehouseUnavailable
from railpulse_shared.contracts import AlarmState, AlarmTransition, Severity

__all__ = ["Warehouse"]

logger = structlog.get_logger()

_NEEDED: dict[str, frozenset[str]] = {
    "telemetry": frozenset({"train", "ts", "channel", "value"}),
    "alarms": frozenset(
        {"alarm_id", "train", "alert_key", "state", "severity", "changed_at", "version"}
    ),
}
_RECHECK_S = 60.0
_MAX_ROWS = 250_000


class Warehouse:
    def __init__(
        self, dsn: str | None, *, schema: str | None = None, connect_timeout_s: int = 2
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self._tables: dict[str, sql.Composable] = {}
        self._checked = 0.0
        self.status = "not configured" if not dsn else "not checked yet"

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if not self.dsn:
            raise WarehouseUnavailable("no warehouse configured (RAILPULSE_PG_DSN)")
        try:
            return await psycopg.AsyncConnection.connect(
                self.dsn,
                connect_timeout=self.connect_timeout_s,
                autocommit=True,
                options="-c statement_timeout=5000 -c default_transaction_read_only=on",
            )
        except psycopg.Error as exc:
            self.status = f"unreachable: {type(exc).__name__}"
            raise WarehouseUnavailable(f"warehouse unreachable: {exc}") from exc

    async def _table(self, conn: psycopg.AsyncConnection[Any], name: str) -> sql.Composable:
        if time.monotonic() - self._checked > _RECHECK_S:
            self._tables = await self._discover(conn)
            self._checked = time.monotonic()
            found = ", ".join(sorted(self._tables)) or "none yet"
            self.status = f"connected; history tables: {found}"
        table = self._tables.get(name)
        if table is None:
            raise WarehouseUnavailable(f"the warehouse has no {name} table yet")
        return table

    async def _discover(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, sql.Composable]:
        rows = await (
            await conn.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE table_name = ANY(%s) "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND (%s::text IS NULL OR table_schema = %s::text)",
                (list(_NEEDED), self.schema, self.schema),
            )
        ).fetchall()
        columns: dict[tuple[str, str], set[str]] = {}
        for schema, table, column in rows:
            columns.setdefault((schema, table), set()).add(column)
        found: dict[str, sql.Composable] = {}
        for (schema, table), cols in sorted(columns.items()):
            if table not in found and _NEEDED[table] <= cols:
                found[table] = sql.Identifier(schema, table)
        return found

    async def telemetry(
        self, train: str, from_ms: int, until_ms: int
    ) -> list[tuple[int, dict[str, float]]]:
        """Frames of `train` in [from_ms, until_ms), oldest first, as (ts_ms, readings)."""
        try:
            async with await self._connect() as conn:
                table = await self._table(conn, "telemetry")
                query = sql.SQL(
                    "SELECT (EXTRACT(EPOCH FROM ts) * 1000)::bigint AS ts_ms, channel, value "
                    "FROM {} WHERE train = %s AND ts >= to_timestamp(%s / 1000.0) "
                    "AND ts < to_timestamp(%s / 1000.0) ORDER BY ts LIMIT {}"
                ).format(table, sql.Literal(_MAX_ROWS))
                rows = await (await conn.execute(query, (train, from_ms, until_ms))).fetchall()
        except psycopg.Error as exc:
            raise WarehouseUnavailable(f"telemetry history: {exc}") from exc
        frames: dict[int, dict[str, float]] = {}
        for ts_ms, channel, value in rows:
            if value is not None:
                frames.setdefault(int(ts_ms), {})[str(channel)] = float(value)
        return sorted(frames.items())

    async def alarm_transitions(self, train: str, since_ms: int) -> list[AlarmTransition]:
        """The train's alarm transitions since `since_ms`, oldest first."""
        try:
            async with await self._connect() as conn:
                table = await self._table(conn, "alarms")
                query = sql.SQL(
                    "SELECT alarm_id, alert_key, state, severity, "
                    "(EXTRACT(EPOCH FROM changed_at) * 1000)::bigint, version "
                    "FROM {} WHERE train = %s AND changed_at >= to_timestamp(%s / 1000.0) "
                    "ORDER BY changed_at LIMIT 10000"
                ).format(table)
                rows = await (await conn.execute(query, (train, since_ms))).fetchall()
        except psycopg.Error as exc:
            raise WarehouseUnavailable(f"alarm history: {exc}") from exc
        result: list[AlarmTransition] = []
        for alarm_id, alert_key, state, severity, at_ms, version in rows:
            try:
                result.append(
                    AlarmTransition(
                        alarm_id=str(alarm_id),
                        train=train,
                        alert_key=str(alert_key or ""),
                        state=AlarmState(state),
                        severity=Severity(int(severity)),
                        at_ms=int(at_ms),
                        version=max(1, int(version or 1)),
                    )
                )
            except ValueError:
                logger.debug("alarm_row_skipped", alarm_id=alarm_id, state=state)
        return result
