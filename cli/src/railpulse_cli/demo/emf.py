"""Read the services' EMF metric files as they grow: the demo's progress comes from the same
metrics CloudWatch would get."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

__all__ = ["MetricsTail"]


class MetricsTail:
    """Sums and samples of every metric, per service, from EMF files (one per service)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self._offsets: dict[str, int] = dict.fromkeys(files, 0)
        self.sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.last: dict[str, dict[str, float]] = defaultdict(dict)

    def poll(self) -> None:
        for service, path in self.files.items():
            try:
                with path.open("rb") as f:
                    f.seek(self._offsets[service])
                    data = f.read()
            except FileNotFoundError:
                continue
            complete = data.rfind(b"\n") + 1  # a line still being written waits for next time
            self._offsets[service] += complete
            for line in data[:complete].splitlines():
                self._add(service, line)

    def _add(self, service: str, line: bytes) -> None:
        try:
            doc = json.loads(line)
            directives = doc["_aws"]["CloudWatchMetrics"]
        except (ValueError, KeyError, TypeError):
            return
        for directive in directives:
            for metric in directive.get("Metrics", []):
                name = metric["Name"]
                values = doc.get(name)
                values = values if isinstance(values, list) else [values]
                numbers = [float(v) for v in values if isinstance(v, int | float)]
                if not numbers:
                    continue
                self.sums[service][name] += sum(numbers)
                self.last[service][name] = numbers[-1]
                if metric.get("Unit") == "Milliseconds":
                    self.samples[service][name].extend(numbers)

    def total(self, service: str, name: str) -> float:
        return self.sums.get(service, {}).get(name, 0.0)
