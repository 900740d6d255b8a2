"""Rejected records → the SQS `rejects` queue: the mechanism is shared by every consumer
(`railpulse_shared.rejects`); ingest's names stay importable from here."""

from __future__ import annotations

from railpulse_shared.rejects import MAX_SQS_BYTES, RawKind, Rejection, RejectSink, attributes_of

__all__ = ["MAX_SQS_BYTES", "RawKind", "RejectSink", "Rejection", "attributes_of"]
