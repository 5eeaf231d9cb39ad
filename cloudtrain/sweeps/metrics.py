"""Reading a trial's metric stream (``metrics.jsonl``, one JSON object per line) as it grows."""

from __future__ import annotations

import json
from pathlib import Path


class MetricTail:
    """New values of one metric in a growing ``metrics.jsonl``; a line still being written is left
    for the next read. Each value's step is its ordinal (1, 2, ...), so trials that log at other
    optimizer steps (another batch size) are compared report by report (epoch by epoch)."""

    def __init__(self, path: Path, metric: str) -> None:
        self.path, self.metric = path, metric
        self.position = 0
        self.values: list[float] = []

    def read(self) -> list[tuple[int, float]]:
        """The values logged since the last read, as (ordinal step, value)."""
        if not self.path.is_file():
            return []
        new: list[tuple[int, float]] = []
        with open(self.path, "rb") as handle:
            handle.seek(self.position)
            while True:
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break
                self.position = handle.tell()
                try:
                    item = json.loads(line)
                    if item.get("name") != self.metric:
                        continue
                    value = float(item["value"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                self.values.append(value)
                new.append((len(self.values), value))
        return new

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None
