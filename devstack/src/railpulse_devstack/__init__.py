"""railpulse's local stack: moto (via hypercorn), mosquitto with mutual TLS, PostgreSQL and an
IoT Core stand-in, as plain processes under `<repo>/.local/stack/`.

    railpulse stack up | down | status

Code reaches the running stack through `stack_env()` (the env file's KEY -> VALUE map) and gets
device identities with `ensure_device(name)` / `ensure_devices(names)` -> `DeviceCert(name,
cert_path, key_path)`. The CA is `stack_env()["RAILPULSE_CA_FILE"]`.
"""

from railpulse_devstack.env import stack_env
from railpulse_devstack.errors import (
    PortInUseError,
    ProcessStartError,
    StackError,
    StackNotRunningError,
)
from railpulse_devstack.pki import DeviceCert
from railpulse_devstack.stack import down, ensure_device, ensure_devices, status, up

__all__ = [
    "DeviceCert",
    "PortInUseError",
    "ProcessStartError",
    "StackError",
    "StackNotRunningError",
    "down",
    "ensure_device",
    "ensure_devices",
    "stack_env",
    "status",
    "up",
]
