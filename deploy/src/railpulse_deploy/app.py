"""The CDK app: one core stack and one stack per service (each deployable alone with
`cdk deploy Railpulse<Service> --exclusively`), plus the dashboard."""

from __future__ import annotations

import os

from aws_cdk import App, Aspects, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from railpulse_deploy.config import load_config
from railpulse_deploy.core import CoreStack
from railpulse_deploy.dashboard import DashboardStack
from railpulse_deploy.nag import DocumentedWildcards

__all__ = ["FEATURE_FLAGS", "build_app", "main"]

# Also in cdk.json; set here too so tests and `python -m railpulse_deploy.app` agree with it.
FEATURE_FLAGS = {
    # Server access logs are granted by bucket policy, not the legacy LogDeliveryWrite ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(app: App | None = None, *, nag: bool = True) -> App:
    app = app or App()
    for flag, value in FEATURE_FLAGS.items():
        if app.node.try_get_context(flag) is None:
            app.node.set_context(flag, value)
    cfg = load_config(app)
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=cfg.region)
    core = CoreStack(app, "RailpulseCore", cfg, env=env)
    from railpulse_deploy.services import build_service_stacks

    build_service_stacks(app, core.refs, env)
    DashboardStack(app, "RailpulseDashboard", env=env)
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
