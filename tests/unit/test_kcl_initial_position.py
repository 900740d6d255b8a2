"""The KCL initial position from the settings: AT_TIMESTAMP becomes the property KCL 2.5.8 reads
(`initialPositionInStreamExtended`, epoch seconds) and nothing that would override it; a
timestamp without AT_TIMESTAMP, or AT_TIMESTAMP without one, is refused naming the variable."""

from __future__ import annotations

import pytest

from railpulse_shared.config import load_settings
from railpulse_shared.errors import ConfigError
from railpulse_shared.multilang import KclSettings, kcl_application


def _props(env: dict[str, str]) -> dict[str, str]:
    settings = load_settings(KclSettings, {"AWS_REGION": "us-east-1", **env})
    app = kcl_application(settings, application_name="a", stream_name="s", processor_module="m")
    return dict(line.split(" = ", 1) for line in app.properties().splitlines())


def test_at_timestamp_is_the_extended_position_in_epoch_seconds() -> None:
    for stamp in ("2026-11-29T08:00:00Z", "2026-11-29T08:00:00", "1795939200"):
        props = _props({"RAILPULSE_KCL_INITIAL_POSITION": "AT_TIMESTAMP",
                        "RAILPULSE_KCL_INITIAL_TIMESTAMP": stamp})
        assert props["initialPositionInStreamExtended"] == "1795939200"
        assert "initialPositionInStream" not in props


def test_the_usual_positions_are_unchanged() -> None:
    assert _props({})["initialPositionInStream"] == "TRIM_HORIZON"
    assert _props({"RAILPULSE_KCL_INITIAL_POSITION": "LATEST"})["initialPositionInStream"] == "LATEST"


@pytest.mark.parametrize("env", [
    {"RAILPULSE_KCL_INITIAL_POSITION": "AT_TIMESTAMP"},
    {"RAILPULSE_KCL_INITIAL_POSITION": "AT_TIMESTAMP", "RAILPULSE_KCL_INITIAL_TIMESTAMP": "soon"},
    {"RAILPULSE_KCL_INITIAL_TIMESTAMP": "2026-11-29T08:00:00Z"},
])
def test_a_replay_point_that_would_not_apply_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="RAILPULSE_KCL_INITIAL_TIMESTAMP"):
        _props(env)
