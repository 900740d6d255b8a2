"""The soak's memory figures: a process tree's resident memory, and its split by program; and the
CPU time a tree used, for where a loaded machine's cores go."""

from __future__ import annotations

import os
import subprocess
import sys

from waiting import wait_until

from bench._rss import tree_cpu_s, tree_rss_by_program, tree_rss_mb


def test_a_tree_counts_its_children_and_splits_by_program() -> None:
    before = tree_rss_mb(os.getpid())
    # A child that holds 64 MB of touched memory until its stdin closes.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; b = bytearray(64 << 20); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        wait_until(lambda: tree_rss_mb(child.pid) >= 64, 20, "the child's 64 MB")
        assert tree_rss_mb(os.getpid()) >= before + 64  # the parent's tree holds the child
        split = tree_rss_by_program(os.getpid())
        assert set(split) == {"python"}  # no JVM in this tree
        assert abs(split["python"] - tree_rss_mb(os.getpid())) < 16
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert tree_rss_mb(child.pid) == 0  # gone


def test_a_trees_cpu_time_counts_its_busy_child() -> None:
    before = tree_cpu_s(os.getpid())
    # A child that spins until it has used 0.6 s of CPU (counted in ticks: 0.5 is safe), then waits for its stdin to close.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nwhile time.process_time() < 0.6: pass\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        wait_until(lambda: tree_cpu_s(child.pid) >= 0.5, 30, "the child's 0.5 s of CPU")
        assert tree_cpu_s(os.getpid()) >= before + 0.5  # the parent's tree holds the child's
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    assert tree_cpu_s(child.pid) == 0  # gone
