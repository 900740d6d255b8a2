"""Typed errors of the local stack."""

from __future__ import annotations

__all__ = ["PortInUseError", "ProcessStartError", "StackError", "StackNotRunningError"]


class StackError(Exception):
    """Base class of every local-stack error; its message is meant for a person."""


class PortInUseError(StackError):
    """A port the stack needs is taken by a process that is not part of this stack."""

    def __init__(self, component: str, host: str, port: int, env_var: str) -> None:
        self.component = component
        self.host = host
        self.port = port
        self.env_var = env_var
        super().__init__(
            f"port {port} on {host} ({component}) is already in use by another process; "
            f"stop that process or choose another port with {env_var}=<port>"
        )


class ProcessStartError(StackError):
    """A component did not become ready in time; the message names its log file."""


class StackNotRunningError(StackError):
    """The stack's env file is missing: `railpulse stack up` has not run."""
