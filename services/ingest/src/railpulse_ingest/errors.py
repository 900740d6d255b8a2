"""Ingest's typed errors: a record that cannot become data carries its reject reason."""

from __future__ import annotations

from railpulse_shared.contracts import RejectReason
from railpulse_shared.errors import PermanentError

__all__ = ["RejectError"]


class RejectError(PermanentError):
    """This record goes to the dead-letter queue with `reason` and a human-readable `detail`."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
