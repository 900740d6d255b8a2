"""The shadow service's document semantics (no stack needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from railpulse_devstack.iot.shadow import ShadowError, ShadowStore


def _store(tmp_path: Path | None = None) -> tuple[ShadowStore, list[tuple[str, dict[str, Any]]]]:
    store = ShadowStore(
        tmp_path / "shadows.json" if tmp_path else None, clock=lambda: 1_700_000_000.0
    )
    events: list[tuple[str, dict[str, Any]]] = []
    store.subscribe(lambda thing, name, event, doc: events.append((event, doc)))
    return store, events


def test_update_merges_versions_and_computes_delta() -> None:
    store, events = _store()
    out = store.update("t", "", {"state": {"reported": {"temp": 20, "door": {"a": "closed"}}}})
    assert out.accepted["version"] == 1 and out.delta is None
    out = store.update(
        "t", "", {"state": {"desired": {"temp": 22, "door": {"a": "closed"}}}, "clientToken": "c1"}
    )
    assert out.accepted["version"] == 2
    assert out.delta is not None
    assert out.delta["state"] == {"temp": 22}
    assert out.delta["clientToken"] == "c1"
    assert out.delta["metadata"] == {"temp": {"timestamp": 1_700_000_000}}
    assert out.documents["previous"]["version"] == 1 and out.documents["current"]["version"] == 2
    assert [e for e, _ in events] == [
        "update/accepted",
        "update/documents",
        "update/accepted",
        "update/documents",
        "update/delta",
    ]
    doc = store.get("t")
    assert doc["state"]["delta"] == {"temp": 22}
    assert doc["metadata"]["reported"]["door"]["a"] == {"timestamp": 1_700_000_000}


def test_null_deletes_keys_and_sections() -> None:
    store, _ = _store()
    store.update("t", "", {"state": {"desired": {"a": 1, "b": {"c": 2, "d": 3}}}})
    store.update("t", "", {"state": {"desired": {"a": None, "b": {"c": None}}}})
    assert store.get("t")["state"]["desired"] == {"b": {"d": 3}}
    store.update("t", "", {"state": {"desired": None}})
    assert "desired" not in store.get("t")["state"]


def test_version_conflict_and_errors_echo_client_token() -> None:
    store, _ = _store()
    store.update("t", "", {"state": {"reported": {"x": 1}}})
    with pytest.raises(ShadowError) as err:
        store.update("t", "", {"state": {"reported": {"x": 2}}, "version": 7, "clientToken": "tok"})
    assert (err.value.code, err.value.client_token, err.value.error_type) == (
        409,
        "tok",
        "ConflictException",
    )
    with pytest.raises(ShadowError) as err:
        store.update("t", "", b"not json")
    assert err.value.code == 400
    with pytest.raises(ShadowError) as err:
        store.update("t", "", {"state": {"desired": {"blob": "x" * 9000}}})
    assert err.value.code == 413
    with pytest.raises(ShadowError) as err:
        store.get("nobody")
    assert err.value.code == 404


def test_delete_keeps_version_and_store_persists(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    store.update("t", "", {"state": {"desired": {"a": 1}}})
    store.update("t", "alerts", {"state": {"desired": {"n": 1}}})
    assert store.delete("t", "", {"clientToken": "d"}) == {
        "version": 1,
        "timestamp": 1_700_000_000,
        "clientToken": "d",
    }
    with pytest.raises(ShadowError):
        store.get("t")
    assert store.update("t", "", {"state": {"desired": {"a": 2}}}).accepted["version"] == 2
    store.close()
    again = ShadowStore(tmp_path / "shadows.json")
    try:
        assert again.get("t")["state"]["desired"] == {"a": 2}
        assert again.get("t", "alerts")["version"] == 1
        assert again.names("t") == ["alerts"]
    finally:
        again.close()
    assert json.loads((tmp_path / "shadows.json").read_text())["shadows"]
