"""Where a command's AWS calls go: the local stack, or AWS when it is named. Never by default.

In order:
1. `--aws` (or `RAILPULSE_TARGET=aws`): real AWS, with the environment's own credentials,
   region and resource names. Refused together with `AWS_ENDPOINT_URL` (two targets).
2. `AWS_ENDPOINT_URL` set: that endpoint (a harness, compose, another stack), with the
   environment as it is.
3. Otherwise the local stack's env file (`railpulse stack up` writes it): its endpoints and
   credentials, and its resource names where the environment has none. Credentials of the shell
   (a profile, a session token) never go with it: they are not the stack's.
Nothing found is an error before any network call: no silent fallback to AWS.
A local endpoint (2 or 3) must answer before the command starts, so a stopped stack is one line.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Final
from urllib.parse import urlparse

from railpulse_cli.errors import STACK_UP, CliError, UsageError

__all__ = ["TARGET_HELP", "add_target_argument", "resolve_env"]

TARGET_HELP: Final = (
    "target: the local stack (its env file, or AWS_ENDPOINT_URL) unless --aws or "
    "RAILPULSE_TARGET=aws names real AWS; with neither and no stack running, nothing is called"
)
_AWS_HELP = (
    "use real AWS with your own credentials (as RAILPULSE_TARGET=aws); "
    "by default only the local stack (`railpulse stack up`) or AWS_ENDPOINT_URL is used"
)
# What a shell may hold for real AWS, never sent to the local stack.
_SHELL_CREDENTIALS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")
_STACK_OWNS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aws", action="store_true", help=_AWS_HELP)


def wants_aws(flag: bool, env: dict[str, str]) -> bool:
    target = env.get("RAILPULSE_TARGET", "").strip().lower()
    if target not in ("", "local", "aws"):
        raise UsageError(
            f"RAILPULSE_TARGET: {target!r} is not a target",
            "set it to `aws` or `local`, or unset it",
        )
    return flag or target == "aws"


def resolve_env(aws: bool = False, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a command's settings and AWS clients use (see the module doc).

    Also written to `os.environ` (when `environ` is not given): botocore, which DuckDB's
    credentials come from, reads the process environment.
    """
    env = dict(os.environ if environ is None else environ)
    if wants_aws(aws, env):
        if env.get("AWS_ENDPOINT_URL"):
            raise UsageError(
                "--aws and AWS_ENDPOINT_URL both name a target",
                "unset AWS_ENDPOINT_URL for AWS, or drop --aws / RAILPULSE_TARGET=aws",
            )
        return env
    if env.get("AWS_ENDPOINT_URL"):
        ensure_answers(env["AWS_ENDPOINT_URL"], "AWS_ENDPOINT_URL")
        return env
    env = _with_stack(env)
    ensure_answers(env["AWS_ENDPOINT_URL"], "the local stack")
    if environ is None:
        for key in _SHELL_CREDENTIALS:
            os.environ.pop(key, None)
        os.environ.update(env)
    return env


def _with_stack(env: dict[str, str]) -> dict[str, str]:
    from railpulse_devstack.config import load_config
    from railpulse_devstack.env import stack_env
    from railpulse_devstack.errors import StackNotRunningError

    config = load_config()
    try:
        stack = stack_env(config)
    except StackNotRunningError:
        raise CliError(
            f"no target: the local stack is not running (no {config.env_file}) and nothing "
            "names real AWS",
            f"{STACK_UP}, or pass --aws (or RAILPULSE_TARGET=aws) to use AWS",
        ) from None
    merged = {k: v for k, v in env.items() if k not in _SHELL_CREDENTIALS}
    for key, value in stack.items():
        if key in _STACK_OWNS or key.startswith("AWS_ENDPOINT_URL"):
            merged[key] = value
        else:
            merged.setdefault(key, value)
    return merged


def ensure_answers(endpoint: str, source: str, timeout_s: float = 2.0) -> None:
    """Refuse an endpoint nothing listens on, in one line, before any client tries it."""
    url = urlparse(endpoint)
    if not url.hostname:
        raise UsageError(
            f"AWS_ENDPOINT_URL: {endpoint!r} is not a URL", "e.g. http://127.0.0.1:4566"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            pass
    except OSError:
        raise CliError(f"nothing answers at {endpoint} ({source})", STACK_UP) from None
