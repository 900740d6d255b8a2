"""CloudWatch Embedded Metric Format: metrics buffered in memory, flushed as one JSON line.

A flush writes `{"_aws": {"Timestamp", "CloudWatchMetrics": [{"Namespace", "Dimensions",
"Metrics"}]}, <dimension values>, <metric values>, <metadata>}` to a `MetricsSink`: stdout for
ordinary services (the awslogs driver ships it), the CloudWatch agent over TCP/UDP for KCL
consumers, whose stdout belongs to the MultiLangDaemon. Names are CamelCase nouns; dimensions
are low-cardinality (service, stream); identifiers go in metadata.
"""

from __future__ import annotations

import socket
import sys
import time
from collections import defaultdict
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import urlparse

import msgspec

from railpulse_shared.errors import ConfigError

__all__ = [
    "MAX_DIMENSIONS",
    "MAX_METRICS",
    "AgentSink",
    "FileSink",
    "Metrics",
    "MetricsSink",
    "StreamSink",
    "Unit",
    "sink_from_url",
]

MAX_METRICS = 100
"""EMF allows at most 100 metrics in one document."""
MAX_DIMENSIONS = 30
"""EMF allows at most 30 dimensions in one dimension set."""
MAX_VALUES = 100
"""EMF allows at most 100 values in one metric's array."""

Unit = Literal["Count", "Milliseconds", "Seconds", "Bytes", "Count/Second", "Percent", "None"]

_encoder = msgspec.json.Encoder()


class MetricsSink(Protocol):
    def write(self, line: bytes) -> None: ...


class StreamSink:
    """Writes EMF lines to a text stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, line: bytes) -> None:
        stream = self._stream or sys.stdout
        stream.write(line.decode() + "\n")
        stream.flush()


class AgentSink:
    """Sends EMF lines to the CloudWatch agent (`tcp://host:port` or `udp://host:port`)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("tcp", "udp") or not parsed.hostname or not parsed.port:
            raise ConfigError("RAILPULSE_METRICS_SINK", f"not a tcp:// or udp:// address: {url}")
        self._address = (parsed.hostname, parsed.port)
        self._udp = parsed.scheme == "udp"
        self._sock: socket.socket | None = None

    def write(self, line: bytes) -> None:
        payload = line + b"\n"
        try:
            if self._sock is None:
                kind = socket.SOCK_DGRAM if self._udp else socket.SOCK_STREAM
                self._sock = socket.socket(socket.AF_INET, kind)
                self._sock.connect(self._address)
            self._sock.sendall(payload)
        except OSError:
            # Metrics must never take a service down: drop this flush, reconnect next time.
            if self._sock is not None:
                self._sock.close()
            self._sock = None


class FileSink:
    """Appends EMF lines to a file (`file:///path`): a local run's metrics, or an agent-tailed log."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, line: bytes) -> None:
        # O_APPEND writes of one short line are atomic, so processes can share the file.
        with open(self.path, "ab") as f:
            f.write(line + b"\n")


def sink_from_url(url: str) -> MetricsSink:
    """`stdout`, `stderr`, `file:///path`, `tcp://host:port` or `udp://host:port`."""
    if url == "stdout":
        return StreamSink()
    if url == "stderr":
        return StreamSink(sys.stderr)
    if url.startswith("file://"):
        return FileSink(url.removeprefix("file://"))
    return AgentSink(url)


class Metrics:
    """A buffer of metrics for one namespace and dimension set, flushed as EMF."""

    def __init__(
        self,
        namespace: str,
        dimensions: dict[str, str],
        sink: MetricsSink | None = None,
    ) -> None:
        if len(dimensions) > MAX_DIMENSIONS:
            raise ValueError(f"at most {MAX_DIMENSIONS} dimensions")
        self.namespace = namespace
        self.dimensions = dict(dimensions)
        self.sink = sink or StreamSink()
        self._values: dict[str, list[float]] = defaultdict(list)
        self._units: dict[str, Unit] = {}
        self._metadata: dict[str, Any] = {}

    def add(self, name: str, value: float, unit: Unit = "Count") -> None:
        if name not in self._values and len(self._values) >= MAX_METRICS:
            self.flush()
        self._values[name].append(float(value))
        self._units[name] = unit
        if len(self._values[name]) >= MAX_VALUES:
            self.flush()

    def add_metadata(self, key: str, value: Any) -> None:
        self._metadata[key] = value

    def document(self, timestamp_ms: int | None = None) -> dict[str, Any]:
        """The EMF document of what is buffered (does not clear it)."""
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [sorted(self.dimensions)],
                        "Metrics": [
                            {"Name": name, "Unit": self._units[name]} for name in self._values
                        ],
                    }
                ],
            },
            **self._metadata,
            **self.dimensions,
        }
        for name, values in self._values.items():
            doc[name] = values[0] if len(values) == 1 else values
        return doc

    def flush(self) -> None:
        """Write one EMF line if anything is buffered, then clear the buffer."""
        if not self._values:
            return
        line = _encoder.encode(self.document())
        self._values.clear()
        self._units.clear()
        self._metadata.clear()
        self.sink.write(line)
