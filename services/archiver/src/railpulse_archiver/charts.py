"""Charts for the fleet health report as inline SVG: pure functions from numbers to markup.

No plotting library: the report must render the same in a browser, in a mail client that shows
HTML and in the PDF printed from it, and the archiver package should not carry matplotlib.
Every text is escaped; sizes are in SVG user units (the charts scale with the page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

__all__ = ["KIND_COLOURS", "completeness_heatmap", "horizontal_bars", "stacked_day_bars"]

KIND_COLOURS = {"limit": "#d9480f", "model": "#1c7ed6", "sensor_fault": "#7048e8"}
_OTHER = "#868e96"
_INK = "#1d2733"
_MUTED = "#6b7785"
_GRID = "#dde3ea"
_FONT = "font-family='system-ui,sans-serif' font-size='11'"


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (axis top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value))


def _svg(width: int, height: int, body: str, title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='100%' role='img' aria-label='{escape(title)}' {_FONT}>"
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _day_label(day: date, count: int) -> str:
    return day.strftime("%d %b") if count <= 16 else day.strftime("%d")


def stacked_day_bars(days: Sequence[date], series: Mapping[str, Sequence[int]], title: str) -> str:
    """One bar per day, stacked by series (alert kind), with a legend and a count axis."""
    width, height, left, right, top, bottom = 860, 260, 44, 12, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s[i] for s in series.values()) for i in range(len(days))]
    top_value = _nice_max(max([*totals, 5]))  # counts: whole-number ticks
    ticks = 4 if f"{top_value:g}".startswith("2") else 5
    parts: list[str] = []
    for step in range(ticks + 1):
        value = top_value * step / ticks
        y = top + plot_h - plot_h * step / ticks
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='{_GRID}'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='{_MUTED}'>{value:g}</text>"
        )
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.7, 48), 1.0)
    every = max(1, math.ceil(len(days) / 16))
    for i, day in enumerate(days):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for name, values in series.items():
            h = plot_h * values[i] / top_value
            if h > 0:
                y -= h
                parts.append(
                    f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                    f"fill='{KIND_COLOURS.get(name, _OTHER)}'><title>{escape(name)} "
                    f"{day:%Y-%m-%d}: {values[i]}</title></rect>"
                )
        if totals[i]:
            parts.append(
                f"<text x='{x + bar / 2:.1f}' y='{y - 4:.1f}' text-anchor='middle' "
                f"fill='{_INK}'>{totals[i]}</text>"
            )
        if i % every == 0:
            parts.append(
                f"<text x='{x + bar / 2:.1f}' y='{height - bottom + 16}' text-anchor='middle' "
                f"fill='{_MUTED}'>{_day_label(day, len(days))}</text>"
            )
    x = left
    for name in series:
        parts.append(
            f"<rect x='{x}' y='8' width='10' height='10' fill='{KIND_COLOURS.get(name, _OTHER)}'/>"
            f"<text x='{x + 14}' y='17' fill='{_INK}'>{escape(name.replace('_', ' '))}</text>"
        )
        x += 24 + 7 * len(name)
    if not days or not any(totals):
        parts.append(
            f"<text x='{width / 2}' y='{top + plot_h / 2}' text-anchor='middle' "
            f"fill='{_MUTED}'>no alerts in this period</text>"
        )
    return _svg(width, height, "".join(parts), title)


def horizontal_bars(labels: Sequence[str], values: Sequence[int], title: str) -> str:
    """One bar per label, longest first as given, value at the bar's end."""
    row, left, right, top = 22, 170, 60, 6
    width = 860
    height = top * 2 + row * max(len(labels), 1)
    top_value = max(values, default=0) or 1
    plot_w = width - left - right
    parts: list[str] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + row * i
        w = plot_w * value / top_value
        parts.append(
            f"<text x='{left - 8}' y='{y + 15}' text-anchor='end' fill='{_INK}'>{escape(label)}</text>"
            f"<rect x='{left}' y='{y + 4}' width='{max(w, 1):.1f}' height='{row - 8}' fill='#1c7ed6'/>"
            f"<text x='{left + w + 6:.1f}' y='{y + 15}' fill='{_INK}'>{value}</text>"
        )
    if not labels:
        parts.append(
            f"<text x='{width / 2}' y='{top + 15}' text-anchor='middle' fill='{_MUTED}'>none</text>"
        )
    return _svg(width, height, "".join(parts), title)


def _completeness_colour(pct: float) -> str:
    """Green at 100 %, through amber, to red at 80 % and below."""
    if pct >= 99.95:
        return "#2f9e44"
    if pct >= 99:
        return "#8ce99a"
    if pct >= 95:
        return "#ffd43b"
    if pct >= 80:
        return "#ff922b"
    return "#e03131"


def completeness_heatmap(
    trains: Sequence[str],
    days: Sequence[date],
    pct: Mapping[tuple[str, date], float],
    title: str,
) -> str:
    """A cell per (train, day) coloured by completeness, the value written in it when it fits;
    a day without any frame of the train is blank (grey)."""
    left, top, row, right = 90, 24, 20, 8
    width = 860
    cell = (width - left - right) / max(len(days), 1)
    height = top + row * max(len(trains), 1) + 8
    every = max(1, math.ceil(len(days) / 16))
    parts: list[str] = []
    for j, day in enumerate(days):
        if j % every == 0:
            parts.append(
                f"<text x='{left + cell * (j + 0.5):.1f}' y='{top - 8}' text-anchor='middle' "
                f"fill='{_MUTED}'>{_day_label(day, len(days))}</text>"
            )
    for i, train in enumerate(trains):
        y = top + row * i
        parts.append(
            f"<text x='{left - 8}' y='{y + 14}' text-anchor='end' fill='{_INK}'>{escape(train)}</text>"
        )
        for j, day in enumerate(days):
            x = left + cell * j
            value = pct.get((train, day))
            fill = "#e9ecef" if value is None else _completeness_colour(value)
            label = "no data" if value is None else f"{value:g} %"
            parts.append(
                f"<rect x='{x + 1:.1f}' y='{y + 1}' width='{cell - 2:.1f}' height='{row - 2}' "
                f"fill='{fill}'><title>{escape(train)} {day:%Y-%m-%d}: {label}</title></rect>"
            )
            if value is not None and cell >= 44:
                ink = "#fff" if value < 80 or value >= 99.95 else _INK
                parts.append(
                    f"<text x='{x + cell / 2:.1f}' y='{y + 14}' text-anchor='middle' "
                    f"fill='{ink}'>{value:.4g}</text>"
                )
    return _svg(width, height, "".join(parts), title)
