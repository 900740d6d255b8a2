"""The notifier's settings: the common ones plus the consumer, lifecycle and shadow knobs."""

from __future__ import annotations

from railpulse_shared.config import CommonSettings

__all__ = ["NotifierSettings"]


class NotifierSettings(CommonSettings, frozen=True, kw_only=True):
    service: str = "notifier"
    queue_alerts_url: str | None = None
    """The `alerts` queue URL; looked up by name (`queue_alerts`) when unset."""
    batch_size: int = 10
    """SQS allows at most 10 messages per receive."""
    wait_time_s: int = 20
    """SQS long polling wait."""
    visibility_timeout_s: int = 30
    """Visibility given on receive; extended every third of it while the work is in flight."""
    pollers: int = 2
    """Concurrent receive loops in one task (per-train order is kept by the train mailboxes)."""
    clear_after_s: float = 300.0
    """An open alarm clears after this long without a matching anomaly (the detector has no
    "back in range" event: a quiet period is how an alarm ends)."""
    touch_fraction: float = 0.1
    """Repeats of an open alarm are written at most every `clear_after_s * touch_fraction`: the
    quiet timer may end that much early, in exchange for one write per repeat burst."""
    sweep_interval_s: float = 1.0
    """How often open alarms are checked for acknowledgement (GetThingShadow) and for clearing."""
    rescan_interval_s: float = 30.0
    """How often the table is scanned for open alarms this task did not see (restarts, peers)."""
    shadow_budget_bytes: int = 6144
    """Bytes of the desired `alerts` section; the rest of the 8 KB shadow is left to the reported
    state and other desired keys."""
    shadow_max_attempts: int = 8
    store_max_attempts: int = 6
    metrics_flush_s: float = 10.0
