"""The task definitions and the services agree: every variable a task sets is one its service
reads, and every setting a service requires is set (tests/deploy/test_containers.py then runs the
images exactly so)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from deploy_synth import Synth

from railpulse_archiver.main import APPLICATIONS as ARCHIVER_APPLICATIONS
from railpulse_archiver.settings import ArchiverSettings
from railpulse_detector.settings import APPLICATION_NAME as DETECTOR_APPLICATION
from railpulse_detector.settings import DetectorSettings
from railpulse_ingest.settings import APPLICATION_NAME as INGEST_APPLICATION
from railpulse_ingest.settings import IngestSettings
from railpulse_notifier.settings import NotifierSettings
from railpulse_shared.config import env_name

# Task family -> the settings its entry point loads.
SETTINGS: dict[str, type[msgspec.Struct]] = {
    "railpulse-ingest": IngestSettings,
    "railpulse-detector": DetectorSettings,
    "railpulse-notifier": NotifierSettings,
    "railpulse-archiver-telemetry": ArchiverSettings,
    "railpulse-archiver-events": ArchiverSettings,
    "railpulse-warehouse-load": ArchiverSettings,
    "railpulse-lake-compaction": ArchiverSettings,
}


def app_containers(synth: Synth) -> dict[str, dict[str, Any]]:
    """Task family -> its `app` container definition, over every stack."""
    found = {}
    for task in synth.all_resources("AWS::ECS::TaskDefinition").values():
        props = task["Properties"]
        (app,) = (c for c in props["ContainerDefinitions"] if c["Name"] == "app")
        found[props["Family"]] = app
    return found


def test_every_task_is_known(synth: Synth) -> None:
    assert set(app_containers(synth)) == set(SETTINGS)


@pytest.mark.parametrize("family", sorted(SETTINGS))
def test_every_variable_a_task_sets_is_read_and_every_required_one_is_set(
    synth: Synth, family: str
) -> None:
    app = app_containers(synth)[family]
    fields = msgspec.structs.fields(SETTINGS[family])
    read = {env_name(f.name) for f in fields}
    env = {e["Name"] for e in app.get("Environment", [])}
    assert env <= read, f"{family} sets what its service never reads: {sorted(env - read)}"
    required = {env_name(f.name) for f in fields if f.required}
    assert required <= env, f"{family} leaves required settings unset: {sorted(required - env)}"
    # railpulse_shared.entrypoint.require_target: in AWS the region says where to run.
    assert "AWS_REGION" in env
    assert not app.get("Secrets"), "no secret is passed to a service (IAM roles instead)"


def test_the_lease_tables_are_the_services_own_application_names(synth: Synth) -> None:
    """The KCL finds its lease table by its application name, which each service sets itself."""
    tables = {
        t["Properties"]["TableName"]
        for t in synth.all_resources("AWS::DynamoDB::GlobalTable").values()
    }
    assert {INGEST_APPLICATION, DETECTOR_APPLICATION, *ARCHIVER_APPLICATIONS.values()} <= tables
