"""Ingest's one settings object (`RAILPULSE_*`, see `railpulse_shared.config`)."""

from __future__ import annotations

from railpulse_shared.multilang import KclSettings

__all__ = ["APPLICATION_NAME", "IngestSettings"]

APPLICATION_NAME = "railpulse-ingest"
"""The KCL application name, hence the DynamoDB lease table's name."""


class IngestSettings(KclSettings, frozen=True, kw_only=True):
    service: str = "ingest"
    kcl_application_name: str = APPLICATION_NAME
    """The KCL application, hence the lease table: another ingest on another stream (a second
    deployment, a test) needs its own, as a lease is keyed by shard id alone."""
    max_payload_bytes: int = 131_072
    """IoT Core's MQTT message limit (128 KiB): anything larger did not come through the rule."""
    ts_min_ms: int = 946_684_800_000
    """2000-01-01: earlier sensor times come from a clock that was never set."""
    ts_max_future_ms: int = 300_000
    """How far ahead of ingest's clock a sensor time may be (clock skew)."""
    dedup_window: int = 8_192
    """Sequence numbers remembered per (train, epoch) counter, each with its frame's content
    digest (a power of two; 4 bytes each, 32 KiB per counter)."""
    dedup_max_counters: int = 2_048
    """(train, epoch) counters remembered per shard before the least recently seen is forgotten
    (with the window: 64 MiB per shard process at most, see `dedup`)."""
    dedup_recovery_max_s: int = 300
    """At most this much of `telemetry` is read back at shard start to recover what was forwarded."""
    silent_train_after_s: int = 900
    """A train seen in the last `silent_train_memory_s` that sends nothing for this long counts
    as silent (the `SilentTrains` gauge; the deploy sets it from its `silent_train_minutes`)."""
    silent_train_memory_s: int = 86_400
    """How long a train is remembered after its last frame (the silent-train gauge's horizon)."""
    forward_max_attempts: int = 6
    """PutRecords attempts for a batch's failed entries before giving up (TransientError)."""
    forward_backoff_s: float = 0.1
