"""The console's errors: narrow classes under railpulse's one hierarchy."""

from __future__ import annotations

from railpulse_shared.errors import RailpulseError, TransientError

__all__ = ["ConsoleError", "FeedError", "WarehouseUnavailable"]


class ConsoleError(RailpulseError):
    """Base of the console's own errors."""


class FeedError(ConsoleError, TransientError):
    """A stream or queue could not be read this time (the stack is down, throttling)."""


class WarehouseUnavailable(ConsoleError, TransientError):
    """No warehouse, no connection, or its tables are not there yet: history is left out."""
