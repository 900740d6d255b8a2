"""Resident memory and CPU time of a process and everything it started (Linux /proc), for the
soak's checks and to say where a loaded machine's cores go.

A KCL consumer is a JVM (the MultiLangDaemon) plus one Python child per shard; PostgreSQL forks a
backend per connection: a service's memory and CPU are its whole process tree's.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["stack_pids", "tree_cpu_s", "tree_rss_by_program", "tree_rss_mb"]

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    found, todo, seen = [], [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        found.append(p)
        todo += _children(p)
    return found


def _program(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and its descendants, in MB (0 for a process that is gone)."""
    return round(sum(_rss_kb(p) for p in _tree(pid)) / 1024, 1)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid`, its children it has waited for included."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
        return sum(int(x) for x in fields[11:15]) * _TICK_S  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return 0.0


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by `pid` and its living descendants (0 for a process that is
    gone): the difference of two readings is what the tree used between them, as long as no
    process of it exited unwaited in between."""
    return round(sum(_cpu_s(p) for p in _tree(pid)), 2)


def tree_rss_by_program(pid: int) -> dict[str, float]:
    """The same, split by program: a KCL consumer's JVM (`java`, whose heap grows lazily up to its
    -Xmx whatever the fleet) apart from the Python that holds the service's own state."""
    kb: dict[str, int] = {}
    for p in _tree(pid):
        name = "java" if _program(p) == "java" else "python"
        kb[name] = kb.get(name, 0) + _rss_kb(p)
    return {name: round(v / 1024, 1) for name, v in sorted(kb.items())}


def stack_pids(run_dir: Path) -> dict[str, int]:
    """The local stack's components and their pids, from its pid files (`<run>/<name>.pid`)."""
    pids = {}
    for f in sorted(run_dir.glob("*.pid")):
        first = f.read_text().split("\n", 1)[0].strip()
        if first.isdigit() and Path(f"/proc/{first}").exists():
            pids[f"stack.{f.stem}"] = int(first)
    return pids
