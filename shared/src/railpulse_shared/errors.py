"""The one error hierarchy of railpulse.

`TransientError` means "retry me" (throttling, a broker that is down); `PermanentError` means
"retrying will not help" (the record is poison: dead-letter it). `ContractError` is the permanent
error of a payload that breaks an event contract; it keeps msgspec's path (e.g. `$.readings.speed`).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContractError",
    "HandlerError",
    "MalformedPayloadError",
    "PermanentError",
    "RailpulseError",
    "TransientError",
    "UnstorableError",
]


class RailpulseError(Exception):
    """Base of every error railpulse raises on purpose."""


class TransientError(RailpulseError):
    """A failure that may pass: retry with backoff, never checkpoint past it."""


class PermanentError(RailpulseError):
    """A failure that retrying cannot fix: the input is poison."""


class ContractError(PermanentError):
    """A payload that does not satisfy an event contract.

    `path` is msgspec's JSON path of the offending value (`$` when the whole document is bad).
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class MalformedPayloadError(ContractError):
    """Bytes that are not a document at all (not JSON, truncated, wrong encoding)."""


class HandlerError(PermanentError):
    """A handler raised an unexpected error for one record, `attempts` times in a row: the record
    is dead-lettered with that error (`error_type`, the message) so the shard moves on."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error_type = type(error).__name__
        self.attempts = attempts


class UnstorableError(PermanentError):
    """A valid event that a store cannot hold (an integer beyond int64, a NUL in a string, ...):
    the record is dead-lettered on its own, the rest of its batch is stored."""


class ConfigError(RailpulseError):
    """Missing or invalid configuration; the message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem
