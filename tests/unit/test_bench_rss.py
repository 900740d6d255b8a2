"""The soak's memory figures: a process tree's resident memory, and its split by program."""

from __future__ import annotations

import os
import subprocess
import sys

from waiting import wait_until

from bench._rss import tree_rss_by_program, tree_rss_mb


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
