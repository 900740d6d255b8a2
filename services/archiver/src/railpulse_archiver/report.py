"""Fleet health for business users: one self-contained HTML page over a period.

Alerts by kind, the trains affected, how fast alarms were acknowledged and cleared, and data
completeness per train. Runs on the warehouse's views (or the same views over the lake).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from railpulse_archiver.sql_source import SqlSource

__all__ = ["FleetReport", "build_report", "render_html"]

_SEVERITY = {1: "info", 2: "warning", 3: "critical"}


@dataclass(frozen=True, slots=True)
class FleetReport:
    start: datetime
    end: datetime
    source: str
    summary: dict[str, Any]
    alerts_by_kind: pa.Table
    trains: pa.Table
    completeness: pa.Table


def build_report(source: SqlSource, start: datetime, end: datetime) -> FleetReport:
    p = [start, end]
    by_kind = source.query(
        """SELECT category AS kind, severity, count(*) AS alerts, count(DISTINCT train) AS trains
           FROM alerts WHERE ts >= ? AND ts < ? GROUP BY category, severity
           ORDER BY alerts DESC, kind""",
        p,
    )
    handling = source.query(
        """SELECT count(*) AS alarms,
                  sum(CASE WHEN acknowledged_at IS NOT NULL THEN 1 ELSE 0 END) AS acknowledged,
                  sum(CASE WHEN cleared_at IS NOT NULL THEN 1 ELSE 0 END) AS cleared,
                  avg(seconds_to_acknowledge) AS avg_s_to_ack, avg(seconds_to_clear) AS avg_s_to_clear
           FROM alert_lifecycle WHERE raised_at >= ? AND raised_at < ?""",
        p,
    ).to_pylist()[0]
    trains = source.query(
        """WITH a AS (
               SELECT train, count(*) AS alerts,
                      sum(CASE WHEN severity = 3 THEN 1 ELSE 0 END) AS critical
               FROM alerts WHERE ts >= ? AND ts < ? GROUP BY train
           ), c AS (
               SELECT train, sum(frames_received) AS received, sum(frames_expected) AS expected
               FROM data_completeness WHERE day >= date_trunc('day', CAST(? AS TIMESTAMP)) AND day < ?
               GROUP BY train
           )
           SELECT coalesce(a.train, c.train) AS train, coalesce(a.alerts, 0) AS alerts,
                  coalesce(a.critical, 0) AS critical,
                  round(100.0 * c.received / nullif(c.expected, 0), 2) AS completeness_pct
           FROM a FULL OUTER JOIN c ON a.train = c.train
           ORDER BY alerts DESC, train""",
        [start, end, start, end],
    )
    completeness = source.query(
        """SELECT train, day, frames_received, frames_expected, frames_missing, gaps,
                  completeness_pct
           FROM data_completeness WHERE day >= date_trunc('day', CAST(? AS TIMESTAMP)) AND day < ?
           ORDER BY completeness_pct, train, day LIMIT 50""",
        p,
    )
    fleet = source.query(
        """SELECT sum(frames_received) AS received, sum(frames_expected) AS expected
           FROM data_completeness WHERE day >= date_trunc('day', CAST(? AS TIMESTAMP)) AND day < ?""",
        p,
    ).to_pylist()[0]
    received, expected = fleet["received"] or 0, fleet["expected"] or 0
    trains_rows = trains.to_pylist()
    summary = {
        "alerts": sum(r["alerts"] for r in by_kind.to_pylist()),
        "trains_reporting": len(trains_rows),
        "trains_with_alerts": sum(1 for r in trains_rows if r["alerts"]),
        "alarms": handling["alarms"] or 0,
        "acknowledged": handling["acknowledged"] or 0,
        "cleared": handling["cleared"] or 0,
        "avg_minutes_to_acknowledge": _minutes(handling["avg_s_to_ack"]),
        "avg_minutes_to_clear": _minutes(handling["avg_s_to_clear"]),
        "fleet_completeness_pct": round(100.0 * float(received) / float(expected), 2)
        if expected
        else None,
    }
    return FleetReport(start, end, source.name, summary, by_kind, trains, completeness)


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 1)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "severity":
        return _SEVERITY.get(int(value), str(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return html.escape(str(value))


def _table(title: str, data: pa.Table, empty: str) -> str:
    if data.num_rows == 0:
        return f"<h2>{html.escape(title)}</h2><p class=muted>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(n.replace('_', ' '))}</th>" for n in data.column_names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(k, v)}</td>" for k, v in row.items()) + "</tr>"
        for row in data.to_pylist()
    )
    return f"<h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#1d2733}
h1{margin-bottom:.2rem}.muted{color:#6b7785}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:.8rem;margin:1.5rem 0}
.kpi{background:#f3f6f9;border-radius:8px;padding:.8rem}.kpi b{display:block;font-size:1.6rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #dde3ea;text-align:left}
th{background:#eef2f6;text-transform:capitalize}
"""


def render_html(report: FleetReport) -> str:
    s = report.summary
    kpis = [
        ("Alerts", s["alerts"]),
        ("Trains with alerts", f"{s['trains_with_alerts']} of {s['trains_reporting']}"),
        (
            "Data completeness",
            "—" if s["fleet_completeness_pct"] is None else f"{s['fleet_completeness_pct']}%",
        ),
        ("Alarms cleared", f"{s['cleared']} of {s['alarms']}"),
        (
            "Avg. time to acknowledge",
            "—"
            if s["avg_minutes_to_acknowledge"] is None
            else f"{s['avg_minutes_to_acknowledge']} min",
        ),
        (
            "Avg. time to clear",
            "—" if s["avg_minutes_to_clear"] is None else f"{s['avg_minutes_to_clear']} min",
        ),
    ]
    cards = "".join(
        f"<div class=kpi><span class=muted>{k}</span><b>{html.escape(str(v))}</b></div>"
        for k, v in kpis
    )
    period = f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Fleet health {html.escape(period)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Fleet health</h1><p class=muted>{html.escape(period)} · from the {report.source} · generated {generated}</p>"
        f"<div class=kpis>{cards}</div>"
        + _table("Alerts by kind", report.alerts_by_kind, "No alerts in this period.")
        + _table("Trains", report.trains, "No train reported in this period.")
        + _table("Least complete days", report.completeness, "No telemetry in this period.")
        + "</body></html>\n"
    )
