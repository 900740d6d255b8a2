"""The service's entry points: the KCL application it starts and the rejects CLI it adds."""

from __future__ import annotations

import pytest

from railpulse_cli.main import build_parser
from railpulse_ingest.main import application
from railpulse_ingest.settings import IngestSettings
from railpulse_shared.config import load_settings


def test_kcl_application_runs_the_ingest_processor_on_telemetry_raw() -> None:
    settings = load_settings(
        IngestSettings, {"RAILPULSE_KCL_WORKER_ID": "w1", "AWS_ENDPOINT_URL": "http://x:1"}
    )
    props = application(settings).properties()
    assert "applicationName = railpulse-ingest\n" in props
    assert "streamName = telemetry-raw\n" in props
    assert "-m railpulse_ingest.processor\n" in props and "workerId = w1\n" in props


def test_another_ingest_on_another_stream_gets_its_own_lease_table() -> None:
    settings = load_settings(
        IngestSettings,
        {"RAILPULSE_STREAM_RAW": "raw-b", "RAILPULSE_KCL_APPLICATION_NAME": "railpulse-ingest-b"},
    )
    props = application(settings).properties()
    assert "applicationName = railpulse-ingest-b\n" in props and "streamName = raw-b\n" in props


def test_rejects_cli_is_discovered() -> None:
    args = build_parser().parse_args(["rejects", "redrive", "--reason", "malformed_json"])
    assert args.limit == 100 and args.func.__name__ == "_run_redrive"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rejects", "redrive", "--reason", "nonsense"])
