"""The CDK app: one core stack and one stack per service (each deployable alone with
`cdk deploy Railpulse<Service> --exclusively`), plus the dashboard."""

from __future__ import annotations

import os

from aws_cdk import App, Aspects, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from railpulse_deploy.config import load_config
from railpulse_deploy.core import CoreStack
from railpulse_deploy.nag import DocumentedWildcards

__all__ = ["build_app", "main"]


def build_app(app: App | None = None, *, nag: bool = True) -> App:
    app = app or App()
    cfg = load_config(app)
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=cfg.region)
    core = CoreStack(app, "RailpulseCore", cfg, env=env)  # type: ignore[arg-type]
    from railpulse_deploy.services import build_service_stacks

    build_service_stacks(app, core.refs, env)
    Tags.of(app).add("project", "railpulse")
    Aspects.of(app).add(DocumentedWildcards())
    if nag:
        # Synthesis stops with a report if any finding is not acknowledged.
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
