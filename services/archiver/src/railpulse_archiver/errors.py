"""The archiver's errors, narrow and typed, on the shared hierarchy."""

from __future__ import annotations

from railpulse_shared.errors import PermanentError, RailpulseError, TransientError

__all__ = [
    "ArchiverError",
    "LakeUnavailableError",
    "ManifestConflictError",
    "NoDataError",
    "PdfError",
    "QueryError",
    "WarehouseError",
    "WarehouseUnavailableError",
]


class ArchiverError(RailpulseError):
    """Base of the archiver's own errors."""


class LakeUnavailableError(ArchiverError, TransientError):
    """S3 or Glue refused or failed a call: retry, never checkpoint past it."""


class ManifestConflictError(ArchiverError, PermanentError):
    """A shard manifest that does not describe a state this code can resume from."""


class WarehouseError(ArchiverError, PermanentError):
    """A warehouse statement failed for a reason retrying cannot fix."""


class WarehouseUnavailableError(ArchiverError, TransientError):
    """The warehouse connection failed: the load can be retried (the ledger makes it safe)."""


class QueryError(ArchiverError, PermanentError):
    """A query over the lake or the warehouse failed (bad SQL, missing table)."""


class NoDataError(ArchiverError, PermanentError):
    """What a sharing command was asked for is not there (no lake at a root, no readings of a
    train in a period): said so, and nothing written."""


class PdfError(ArchiverError, PermanentError):
    """The report's PDF could not be printed (no Chromium, or it failed); the HTML stands."""
