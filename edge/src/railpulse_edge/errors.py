"""Errors of the edge agent, under railpulse's one hierarchy."""

from __future__ import annotations

from railpulse_shared.errors import PermanentError, RailpulseError, TransientError

__all__ = ["EdgeError", "LinkDownError", "ScenarioError", "SourceError", "SpoolError"]


class EdgeError(RailpulseError):
    """Base of the edge agent's errors."""


class SpoolError(EdgeError, PermanentError):
    """The spool cannot be opened or is not a railpulse spool."""


class LinkDownError(EdgeError, TransientError):
    """A publish was attempted or failed while the broker link was down: the frame stays spooled."""


class SourceError(EdgeError, PermanentError):
    """A sensor source cannot be loaded or produced something that is not a sample."""


class ScenarioError(EdgeError, PermanentError):
    """A scenario file that cannot be parsed or names an unknown train, fault or channel."""
