"""The KCL's GetRecords calls, timed from a MultiLangDaemon log written with
`RAILPULSE_KCL_LOG_REQUESTS=true` (`railpulse_shared/kcl_requests.logback.xml`).

Each shard's records come from one prefetch thread (`prefetch-cache-<shard>-…`) that sends
GetRecords, waits for the answer, hands the records on and sleeps `idleTimeBetweenReadsInMillis`.
A call is timed from that thread's `Sending Request` line to its next `Last sequence number
retrieved` line (retries included); the gap is the time between two results of one shard: what a
record arriving then waits at most. The SDK's `Retryable error detected` lines are counted: a
retried GetRecords is a call that hung until the SDK's timeout (issue 18: hypercorn's GOAWAY after
1,000 requests dropped the calls in flight; each shard's reads stopped for 10 s).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[([^\]]+)\] (\w+)\s+(\S+) .*? - (.*)$")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)


def get_records_stats(log: Path) -> dict[str, Any]:
    """{calls, per_shard {shard: calls}, call_ms {p50, p99, max}, gap_ms {p50, p99, max},
    retries, slowest [{at, shard, ms}]}."""
    sent: dict[str, datetime] = {}
    last_result: dict[str, datetime] = {}
    calls: list[float] = []
    gaps: list[float] = []
    slowest: list[tuple[float, str, str]] = []
    per_shard: dict[str, int] = {}
    retries = 0
    if not log.exists():
        return {"calls": 0, "per_shard": per_shard}
    with log.open(errors="replace") as lines:
        for line in lines:
            m = _LINE.match(line)
            if m is None:
                continue
            stamp, thread, _level, _logger, message = m.groups()
            if message.startswith("Retryable error detected"):
                retries += 1
                continue
            if not thread.startswith("prefetch-cache-"):
                continue
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
            if message.startswith("Sending Request"):
                sent.setdefault(thread, at)
            elif message.startswith("Last sequence number retrieved") and thread in sent:
                took = (at - sent.pop(thread)).total_seconds() * 1000
                shard = thread.removeprefix("prefetch-cache-").rsplit("-", 1)[0]
                calls.append(took)
                per_shard[shard] = per_shard.get(shard, 0) + 1
                slowest.append((took, stamp, shard))
                if thread in last_result:
                    gaps.append((at - last_result[thread]).total_seconds() * 1000)
                last_result[thread] = at
    slowest.sort(reverse=True)
    return {
        "calls": len(calls),
        "per_shard": per_shard,
        "call_ms": {"p50": _pct(calls, 50), "p99": _pct(calls, 99), "max": _pct(calls, 100)},
        "gap_ms": {"p50": _pct(gaps, 50), "p99": _pct(gaps, 99), "max": _pct(gaps, 100)},
        "retries": retries,
        "slowest": [{"at": at, "shard": shard, "ms": round(ms)} for ms, at, shard in slowest[:5]],
    }
