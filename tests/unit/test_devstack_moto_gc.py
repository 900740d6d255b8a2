"""The moto stand-in's full collections walk only what came since the last one (issue 18: moto
keeps every record and object, and full collections of its whole heap paused every API for
seconds an hour into the soak)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from railpulse_devstack import moto_server


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def watched() -> Iterator[None]:
    watch = moto_server._old_objects_stay_old()
    try:
        yield
    finally:
        gc.callbacks.remove(watch)
        gc.unfreeze()


@pytest.mark.usefixtures("watched")
def test_a_full_collection_freezes_its_survivors_and_new_garbage_is_still_collected() -> None:
    kept = [_Node() for _ in range(1000)]
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept), "the survivors of a full collection are frozen"

    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    gc.collect()
    assert gone() is None, "a cycle made after the freeze is still collected"


@pytest.mark.usefixtures("watched")
def test_a_slow_collection_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_server, "SLOW_GC_S", 0.0)
    with capture_logs() as logs:
        gc.collect()
    pauses = [e for e in logs if e["event"] == "moto.gc_pause"]
    assert pauses and pauses[-1]["generation"] == 2 and pauses[-1]["ms"] >= 0.0
