"""The archiver's settings (`RAILPULSE_*`): buffering hints, which stream, the warehouse."""

from __future__ import annotations

from typing import Literal

from railpulse_shared.multilang import KclSettings

__all__ = ["ArchiverSettings"]


class ArchiverSettings(KclSettings, frozen=True, kw_only=True):
    service: str = "archiver"
    archiver_stream: Literal["telemetry", "events"] = "telemetry"
    """Which stream this processor consumes (one module serves both; `main` sets it per daemon)."""
    # Buffering hints, like Firehose's: flush at whichever comes first. Small defaults suit the
    # local stack; in AWS raise them (e.g. 64 MiB / 300 s) for fewer, larger objects.
    buffer_max_records: int = 50_000
    buffer_max_bytes: int = 8 * 1024 * 1024
    """Bytes of the JSON records as they arrived."""
    buffer_max_age_s: float = 30.0
    flush_retry_s: float = 120.0
    """How long a failing flush is retried before the processor exits (the KCL then restarts the
    shard from its last checkpoint, which never passed un-uploaded data)."""
    warehouse_dialect: Literal["postgres", "redshift"] = "postgres"
    warehouse_dsn: str = ""
    """The warehouse (Redshift in AWS); when unset, `pg_dsn` (the local stack's PostgreSQL)."""
    pg_dsn: str = "postgresql://railpulse@127.0.0.1:5432/railpulse"
    warehouse_schema: str = "public"
    warehouse_load_every_s: float = 0.0
    """When > 0, `railpulse-archiver` also loads new lake objects into the warehouse this often
    (otherwise run `railpulse load` on a schedule)."""
    redshift_iam_role: str = ""
    """The role Redshift assumes to read the lake (`COPY ... IAM_ROLE`)."""
    redshift_host: str = ""
    """The Redshift Serverless workgroup's endpoint (dialect `redshift`; signed in through IAM
    with `redshift-serverless:GetCredentials`, no password)."""
    redshift_port: int = 5439
    redshift_workgroup: str = "railpulse"
    redshift_database: str = "railpulse"

    @property
    def warehouse_url(self) -> str:
        return self.warehouse_dsn or self.pg_dsn
