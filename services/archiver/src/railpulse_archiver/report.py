"""Fleet health for business users: an HTML page over a period, and a PDF of it to forward.

Headline figures, alerts per day by kind, the channels that alert most, data completeness per
train and day, alarm handling times, and the tables behind them. Runs on the warehouse's views
(or the same views over the lake). `build_report` queries, `render_html` fills the Jinja2
template (`templates/fleet_health.html.j2`) with inline SVG charts (`charts.py`), so the page is
one self-contained file; `pdf.print_pdf` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jinja2
import pyarrow as pa
from markupsafe import Markup

from railpulse_archiver.charts import completeness_heatmap, horizontal_bars, stacked_day_bars
from railpulse_archiver.sql_source import SqlSource

__all__ = ["HEATMAP_TRAINS", "FleetReport", "build_report", "render_html"]

_SEVERITY = {1: "info", 2: "warning", 3: "critical"}
_KINDS = ("limit", "model", "sensor_fault")
HEATMAP_TRAINS = 25
"""The completeness chart shows at most this many trains, the least complete first."""
_DAY = "date_trunc('day', CAST(? AS TIMESTAMP))"


@dataclass(frozen=True, slots=True)
class FleetReport:
    start: datetime
    end: datetime
    source: str
    summary: dict[str, Any]
    alerts_by_kind: pa.Table
    trains: pa.Table
    completeness: pa.Table
    alerts_per_day: pa.Table
    """day, kind, alerts."""
    top_channels: pa.Table
    """channel, alerts, trains: the ten channels that explain the most alerts."""
    completeness_daily: pa.Table
    """train, day, completeness_pct: every train and day of the period."""


def build_report(source: SqlSource, start: datetime, end: datetime) -> FleetReport:
    p = [start, end]
    by_kind = source.query(
        """SELECT category AS kind, severity, count(*) AS alerts, count(DISTINCT train) AS trains
           FROM alerts WHERE ts >= ? AND ts < ? GROUP BY category, severity
           ORDER BY alerts DESC, kind""",
        p,
    )
    per_day = source.query(
        """SELECT CAST(date_trunc('day', ts) AS DATE) AS day, category AS kind, count(*) AS alerts
           FROM alerts WHERE ts >= ? AND ts < ?
           GROUP BY CAST(date_trunc('day', ts) AS DATE), category ORDER BY day, kind""",
        p,
    )
    top_channels = source.query(
        """SELECT top_channel AS channel, count(*) AS alerts, count(DISTINCT train) AS trains
           FROM alerts WHERE ts >= ? AND ts < ? AND top_channel IS NOT NULL
           GROUP BY top_channel ORDER BY alerts DESC, channel LIMIT 10""",
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
        f"""WITH a AS (
               SELECT train, count(*) AS alerts,
                      sum(CASE WHEN severity = 3 THEN 1 ELSE 0 END) AS critical
               FROM alerts WHERE ts >= ? AND ts < ? GROUP BY train
           ), c AS (
               SELECT train, sum(frames_received) AS received, sum(frames_expected) AS expected
               FROM data_completeness WHERE day >= {_DAY} AND day < ?
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
        f"""SELECT train, day, frames_received, frames_expected, frames_missing, gaps,
                  completeness_pct
           FROM data_completeness WHERE day >= {_DAY} AND day < ?
           ORDER BY completeness_pct, train, day LIMIT 50""",
        p,
    )
    daily = source.query(
        f"""SELECT train, CAST(day AS DATE) AS day, completeness_pct
           FROM data_completeness WHERE day >= {_DAY} AND day < ? ORDER BY train, day""",
        p,
    )
    fleet = source.query(
        f"""SELECT sum(frames_received) AS received, sum(frames_expected) AS expected
           FROM data_completeness WHERE day >= {_DAY} AND day < ?""",
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
    return FleetReport(
        start,
        end,
        source.name,
        summary,
        by_kind,
        trains,
        completeness,
        per_day,
        top_channels,
        daily,
    )


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 1)


def report_days(start: datetime, end: datetime) -> list[date]:
    """Every UTC day the period [start, end) touches."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _charts(report: FleetReport) -> dict[str, Markup]:
    days = report_days(report.start, report.end)
    per_day = report.alerts_per_day.to_pylist()
    kinds = [k for k in _KINDS if any(r["kind"] == k for r in per_day)]
    kinds += sorted({r["kind"] for r in per_day} - set(kinds))
    index = {d: i for i, d in enumerate(days)}
    series = {k: [0] * len(days) for k in kinds}
    for r in per_day:
        i = index.get(_as_date(r["day"]))
        if i is not None:
            series[r["kind"]][i] += int(r["alerts"])
    top = report.top_channels.to_pylist()
    pct = {
        (r["train"], _as_date(r["day"])): float(r["completeness_pct"])
        for r in report.completeness_daily.to_pylist()
        if r["completeness_pct"] is not None
    }
    overall = {r["train"]: r["completeness_pct"] for r in report.trains.to_pylist()}
    shown = sorted(
        {t for t, _ in pct},
        key=lambda t: (overall.get(t) if overall.get(t) is not None else 100.0, t),
    )[:HEATMAP_TRAINS]
    return {
        "alerts_per_day": Markup(stacked_day_bars(days, series, "Alerts per day by kind")),
        "top_channels": Markup(
            horizontal_bars(
                [r["channel"] for r in top],
                [int(r["alerts"]) for r in top],
                "Top alerting channels",
            )
        ),
        "completeness": Markup(
            completeness_heatmap(sorted(shown), days, pct, "Data completeness per train and day")
        ),
    }


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "severity":
        return _SEVERITY.get(int(value), str(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("railpulse_archiver", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["cell"] = _cell


def render_html(report: FleetReport, *, generated: datetime | None = None) -> str:
    s = report.summary

    def either(value: Any, text: str) -> str:
        return "—" if value is None else text

    kpis = [
        ("Alerts", s["alerts"]),
        ("Trains with alerts", f"{s['trains_with_alerts']} of {s['trains_reporting']}"),
        (
            "Data completeness",
            either(s["fleet_completeness_pct"], f"{s['fleet_completeness_pct']}%"),
        ),
        ("Alarms cleared", f"{s['cleared']} of {s['alarms']}"),
        (
            "Avg. time to acknowledge",
            either(s["avg_minutes_to_acknowledge"], f"{s['avg_minutes_to_acknowledge']} min"),
        ),
        (
            "Avg. time to clear",
            either(s["avg_minutes_to_clear"], f"{s['avg_minutes_to_clear']} min"),
        ),
    ]
    tables = [
        ("Alerts by kind", report.alerts_by_kind, "No alerts in this period."),
        ("Trains", report.trains, "No train reported in this period."),
        ("Least complete days", report.completeness, "No telemetry in this period."),
    ]
    trains_total = len({r["train"] for r in report.completeness_daily.to_pylist()})
    return _env.get_template("fleet_health.html.j2").render(
        period=f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC",
        source=report.source,
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        kpis=kpis,
        charts=_charts(report),
        heatmap_note=(
            f"the {HEATMAP_TRAINS} least complete of {trains_total} trains"
            if trains_total > HEATMAP_TRAINS
            else None
        ),
        tables=[(title, t.column_names, t.to_pylist(), empty) for title, t, empty in tables],
    )
