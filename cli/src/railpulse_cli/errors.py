"""What can go wrong in a `railpulse` command, as one line and a hint, with its exit code.

Commands raise `CliError` (or let a library's typed error through); `failure(exc)` is the one
place that turns a known error into a `CliError`, and `main` prints it as
`railpulse <command>: <what happened>; <what to do>` and exits with its code:

  1  the command failed (a stack that does not answer, a query that failed)
  2  the command was wrong (a flag, a variable, a file name, a range)
  3  nothing matched (an unknown train, an empty lake): like grep's 1, "no such data"

Anything not known here is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from typing import Final

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOTHING",
    "EXIT_USAGE",
    "CliError",
    "NothingFoundError",
    "UsageError",
    "failure",
]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOTHING: Final = 3

STACK_UP: Final = "start it with `railpulse stack up`"


class CliError(Exception):
    """A failure meant for the person at the terminal: what happened, what to do, an exit code."""

    code: int = EXIT_FAILED

    def __init__(self, message: str, hint: str = "", *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def line(self, prog: str) -> str:
        return f"{prog}: {self.message}" + (f"; {self.hint}" if self.hint else "")


class UsageError(CliError):
    """The command as typed cannot be run (a flag, a variable, a file name, a range)."""

    code = EXIT_USAGE


class NothingFoundError(CliError):
    """The command ran, and what it was asked for does not exist: nothing was written."""

    code = EXIT_NOTHING


def failure(exc: BaseException) -> CliError | None:
    """The `CliError` a known exception stands for; None for anything unexpected."""
    if isinstance(exc, CliError):
        return exc
    from railpulse_shared.errors import ConfigError

    if isinstance(exc, ConfigError):
        return UsageError(str(exc), "fix or unset the variable")
    return _stack(exc) or _archiver(exc) or _aws(exc) or _os(exc)


def _stack(exc: BaseException) -> CliError | None:
    from railpulse_devstack.errors import PortInUseError, StackError, StackNotRunningError

    if isinstance(exc, StackNotRunningError):
        return CliError("the local stack is not running", STACK_UP)
    if isinstance(exc, PortInUseError):
        return CliError(
            f"port {exc.port} on {exc.host} ({exc.component}) is taken by another process",
            f"stop it, or pick another port with {exc.env_var}=<port>",
        )
    if isinstance(exc, StackError):
        return CliError(str(exc))
    return None


def _archiver(exc: BaseException) -> CliError | None:
    from railpulse_archiver.errors import (
        ArchiverError,
        LakeUnavailableError,
        NoDataError,
        PdfError,
        QueryError,
        WarehouseUnavailableError,
    )

    if isinstance(exc, NoDataError):
        return NothingFoundError(str(exc))

    if isinstance(exc, WarehouseUnavailableError):
        return CliError(
            _first_line(str(exc)),
            f"is the warehouse running? locally, {STACK_UP}; else check RAILPULSE_WAREHOUSE_DSN",
        )
    if isinstance(exc, LakeUnavailableError):
        return CliError(_first_line(str(exc)), "is the lake reachable? locally, " + STACK_UP)
    if isinstance(exc, QueryError):
        return CliError(_first_line(str(exc)), "see `railpulse query --help` for the tables")
    if isinstance(exc, PdfError):
        return CliError(
            _first_line(str(exc)),
            "the HTML is written; install chromium (scripts/bootstrap.sh does) or pass --no-pdf",
        )
    if isinstance(exc, ArchiverError):
        return CliError(_first_line(str(exc)))
    return None


def _aws(exc: BaseException) -> CliError | None:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(exc, EndpointConnectionError):
        return CliError(f"cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}", STACK_UP)
    if isinstance(exc, NoCredentialsError):
        return UsageError("no AWS credentials", "set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    if isinstance(exc, NoRegionError):
        return UsageError("no AWS region", "set AWS_REGION")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return CliError(f"AWS refused: {error.get('Code', '?')}: {error.get('Message', exc)}")
    return None


def _os(exc: BaseException) -> CliError | None:
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError):
        return UsageError(f"{exc.strerror}: {exc.filename}")
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return CliError(str(exc), "pick another port")
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
