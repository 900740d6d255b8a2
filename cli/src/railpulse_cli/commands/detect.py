"""`railpulse detect FILE.csv`: the detector's decisions on a recording, row by row.

    railpulse detect FILE.csv [--time-column C] [--time-unit iso|s|ms] [--delimiter ';']
                              [--out decisions.csv]

Try the detector on a recording from a real train before trusting it: the service's own decision
code (its rules and forests, not a copy) runs over the file's numeric channels as one generic
device, row by row in time order, and writes one row per input row:

    time, score, threshold, phase, alert, category, channel, expected, seen, evidence, message

`phase` is the forest's (warmup, normal, start, ongoing, end); `alert` is the severity of what the
service would have sent the train's crew for that row (empty if nothing), `channel` the channel it
names (or the forest's top channel during an event), `expected` the forest's running mean of that
channel before the row and `seen` the row's value; `evidence` the rules and models behind the
alert. The forest needs its warm-up (400 rows) before it says anything. The recording's channels
have no catalogued limits, so no limit alerts: those need the channel catalogue.

The time column is --time-column, else the first named like time/timestamp/date, else the first
column; ISO 8601 (UTC unless it says otherwise) or epoch seconds or milliseconds. A file it cannot
read is refused with the line to look at (exit 2). Progress goes to stderr; decisions to --out, or
stdout.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from railpulse_cli.commands._recording import TIME_UNITS, Recording, read_recording
from railpulse_cli.errors import UsageError
from railpulse_cli.progress import Progress

__all__ = ["COLUMNS", "detect", "register"]

COLUMNS = ("time", "score", "threshold", "phase", "alert", "category", "channel", "expected",
           "seen", "evidence", "message")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="run the detector's decisions over a CSV recording, one output row per input row",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE.csv")
    parser.add_argument("--time-column", help="the column holding the time")
    parser.add_argument("--time-unit", choices=TIME_UNITS,
                        help="how times are written (inferred unless ambiguous)")
    parser.add_argument("--delimiter", default=",", help="the field separator (default ',')")
    parser.add_argument("--out", type=Path, help="write the decisions here (default: stdout)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if len(args.delimiter) != 1:
        raise UsageError(f"--delimiter {args.delimiter!r} is not one character",
                         "for a tab, pass --delimiter $'\\t'")
    with Progress("railpulse detect") as progress:
        progress.step(f"reading {args.file}")
        try:
            with args.file.open(newline="", encoding="utf-8-sig") as f:
                recording = read_recording(f, time_column=args.time_column,
                                           delimiter=args.delimiter, time_unit=args.time_unit)
        except UnicodeDecodeError as exc:
            raise UsageError(f"{args.file} is not UTF-8 text ({exc.reason})",
                             "save it as UTF-8 CSV") from exc
        for header, name in recording.renamed.items():
            print(f"railpulse detect: column {header!r} is channel {name!r}", file=sys.stderr)
        if recording.ignored:
            print(f"railpulse detect: text columns left out: {', '.join(recording.ignored)}",
                  file=sys.stderr)
        if args.out is None:
            alerts = detect(recording, sys.stdout, progress)
        else:
            with args.out.open("w", newline="") as out:
                alerts = detect(recording, out, progress)
        summary = ", ".join(f"{c} on {k}" for k, c in alerts.most_common(5)) or "none"
        progress.done(f"{len(recording.rows)} rows, {len(recording.channels)} channel(s); "
                      f"alerts: {summary}")
    return 0


def detect(recording: Recording, out: TextIO, progress: Progress | None = None) -> Counter[str]:
    """Decide every row and write it; the alerts by channel."""
    # numpy and the forests: imported when used, not for every `railpulse` command
    from railpulse_detector.recording import RecordingDetector

    detector = RecordingDetector(recording.channels)
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    done = 0
    if progress is not None:
        progress.detail = lambda: f"{done}/{len(recording.rows)} rows"
        progress.step(f"deciding {len(recording.rows)} rows of {', '.join(recording.channels[:5])}"
                      + (" ..." if len(recording.channels) > 5 else ""))
    alerts: Counter[str] = Counter()
    for time, ts_ms, values in zip(recording.times, recording.ts_ms, recording.rows, strict=True):
        row = detector.decide(ts_ms, values)
        alert = row.alert
        if alert is not None:
            alerts[alert.alert_key] += 1
        writer.writerow([
            time,
            f"{row.score:.6g}",
            f"{row.threshold:.6g}",
            row.phase,
            alert.severity.name.lower() if alert else "",
            alert.category.value if alert else "",
            row.channel,
            "" if row.expected is None else f"{row.expected:.6g}",
            "" if row.seen is None else f"{row.seen:.6g}",
            "+".join(e.source for e in alert.evidence) if alert else "",
            "; ".join(a.message for a in row.alerts),
        ])
        done += 1
    return alerts
