"""The notifier's errors, on the shared hierarchy (`TransientError` = retry, `PermanentError` = poison)."""

from __future__ import annotations

from railpulse_shared.errors import PermanentError, TransientError

__all__ = [
    "NotAnAnomalyError",
    "ShadowRejectedError",
    "ShadowTooLargeError",
    "ShadowUnavailableError",
    "StoreContentionError",
    "StoreUnavailableError",
]


class NotAnAnomalyError(PermanentError):
    """A message on `alerts` that decodes to another event kind."""


class StoreContentionError(TransientError):
    """Conditional writes kept losing to other writers; the message is retried later."""


class StoreUnavailableError(TransientError):
    """DynamoDB or Kinesis failed or throttled past the retries."""


class ShadowUnavailableError(TransientError):
    """The shadow kept conflicting or throttling past the retries."""


class ShadowRejectedError(PermanentError):
    """The shadow service refused the document (not a conflict, not throttling)."""


class ShadowTooLargeError(ShadowRejectedError):
    """The document would pass the shadow size limit (the train's reported state grew)."""
