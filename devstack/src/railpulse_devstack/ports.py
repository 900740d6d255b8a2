"""Port checks: is a port free, wait until something listens."""

from __future__ import annotations

import socket
import time

from railpulse_devstack.errors import PortInUseError

__all__ = ["ensure_free", "is_free", "is_listening", "wait_listening"]


def is_free(host: str, port: int) -> bool:
    """True if we could bind (host, port): nothing listens there, on it or on the wildcard."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int) -> bool:
    """True if something holds (host, port). Probed by binding, not connecting, so a TLS
    server's log is not filled with aborted handshakes."""
    return port != 0 and not is_free(host, port)


def ensure_free(component: str, host: str, port: int, env_var: str) -> None:
    if not is_free(host, port):
        raise PortInUseError(component, host, port, env_var)


def wait_listening(host: str, port: int, deadline: float) -> bool:
    """Poll until (host, port) accepts connections or `deadline` (time.monotonic()) passes."""
    while time.monotonic() < deadline:
        if is_listening(host, port):
            return True
        time.sleep(0.05)
    return is_listening(host, port)
