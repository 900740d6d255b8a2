"""structlog, configured once: JSON lines with ISO UTC timestamps, secrets redacted.

Services call `configure_logging` once at start-up; modules hold `logger = structlog.get_logger()`.
KCL record processors log to stderr, because stdout is the MultiLangDaemon's protocol channel.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "redact"]

_SECRET_KEYS = frozenset(
    {"password", "secret", "aws_secret_access_key", "token", "session_token", "private_key"}
)


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Replace the values of keys that look like secrets."""
    for key in event_dict:
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, service: str | None = None
) -> None:
    """Configure structlog for the process: JSON to `stream` (stderr by default)."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
