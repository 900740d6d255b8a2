"""One stack per service, each deployable alone."""

from __future__ import annotations

from aws_cdk import App, Environment

from railpulse_deploy.core import CoreRefs
from railpulse_deploy.services.archiver import ArchiverStack
from railpulse_deploy.services.detector import DetectorStack
from railpulse_deploy.services.ingest import IngestStack
from railpulse_deploy.services.notifier import NotifierStack

__all__ = ["ArchiverStack", "DetectorStack", "IngestStack", "NotifierStack", "build_service_stacks"]

STACKS = {
    "RailpulseIngest": IngestStack,
    "RailpulseDetector": DetectorStack,
    "RailpulseNotifier": NotifierStack,
    "RailpulseArchiver": ArchiverStack,
}


def build_service_stacks(app: App, refs: CoreRefs, env: Environment) -> dict[str, object]:
    return {name: cls(app, name, refs, env=env) for name, cls in STACKS.items()}
