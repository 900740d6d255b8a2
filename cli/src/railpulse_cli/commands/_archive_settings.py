"""The archiver's settings for the sharing commands, with the local stack's env as a fallback.

Run against AWS, the environment says everything. On a developer machine with the local stack up
and nothing exported, the stack's env file (`railpulse stack up` writes it) fills the gaps, so
`railpulse query "..."` works without sourcing anything. Explicit variables always win.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from railpulse_archiver.settings import ArchiverSettings

__all__ = ["archive_settings"]


def archive_settings() -> ArchiverSettings:
    from railpulse_archiver.settings import ArchiverSettings
    from railpulse_shared.config import load_settings
    from railpulse_shared.log import configure_logging

    env = dict(os.environ)
    if "AWS_ENDPOINT_URL" not in env:
        try:
            from railpulse_devstack.env import stack_env

            env = {**stack_env(), **env}
        except Exception:  # no local stack (or no devstack installed): the environment alone
            pass
    if "AWS_ACCESS_KEY_ID" in env and "AWS_ACCESS_KEY_ID" not in os.environ:
        # botocore (which DuckDB's credentials come from) reads the process environment.
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(key, env[key])
    settings = load_settings(ArchiverSettings, env)
    configure_logging(settings.log_level)  # to stderr: stdout carries results
    return settings
