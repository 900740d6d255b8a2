"""Resident memory of a process and everything it started (Linux /proc), for the soak's checks.

A KCL consumer is a JVM (the MultiLangDaemon) plus one Python child per shard; PostgreSQL forks a
backend per connection: a service's memory is its whole process tree.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["stack_pids", "tree_rss_by_program", "tree_rss_mb"]


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
