"""The flat generic sensor payloads of the reference project's device tests (seed 003).

Each is published on `iot/sensors` by the device it names, over that device's own certificate,
exactly as the acceptance table of docs/design.md lists it (case 5 is not JSON on purpose).
"""

from __future__ import annotations

import json

__all__ = ["GENERIC_CASES", "GENERIC_TOPIC", "generic_payloads"]

GENERIC_TOPIC = "iot/sensors"

GENERIC_CASES: tuple[tuple[str, bytes], ...] = tuple(
    (device, payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    for device, payload in (
        ("sensor-101", {"device_id": "sensor-101", "timestamp": 1700100000, "temperature": 22, "humidity": 55}),
        ("sensor-102", {"device_id": "sensor-102", "timestamp": 1700100500, "temperature": 75, "humidity": 40}),
        ("sensor-103", {"device_id": "sensor-103", "timestamp": 1700101000, "temperature": 21, "humidity": 10}),
        ("sensor-104", {"device_id": "sensor-104", "timestamp": 1700101500, "temperature": 30}),
        ("sensor-105", b"Invalid JSON Data"),
        ("sensor-105", {"device_id": "sensor-105", "timestamp": 1700103000, "temperature": 150, "humidity": 30}),
        ("sensor-106", {"device_id": "sensor-106", "timestamp": 1700103500, "temperature": -10, "humidity": -5}),
        ("sensor-107",
         {"device_id": "sensor-107", "timestamp": 1700104000, "temperature": 25, "humidity": 65, "pressure": 1012}),
    )
)
"""(publishing device, payload bytes), in the table's order (cases 1-8)."""


def generic_payloads(devices: set[str] | None = None) -> list[tuple[str, bytes]]:
    return [(d, p) for d, p in GENERIC_CASES if devices is None or d in devices]
