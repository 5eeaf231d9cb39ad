"""Reading a trial's objective as the trial reports it, from its run directory, as it grows.

A script reports the objective one of three ways (:mod:`cloudtrain.runtime.reports`):
``metrics.jsonl`` (``context().log_metric`` or a regex metric), the ``cloudml-hypertune`` file
(a Vertex AI script) or MLflow (an Azure ML script). The first of them to hold a value of the
metric (``metrics.jsonl`` first when several do at the same read) is the trial's source from then
on, so a value reported two ways is not counted twice; a script that reports one metric two ways
with different values gets the first way's values here, and ``metrics.jsonl``'s as its run's.
"""

from __future__ import annotations

import json
from pathlib import Path

from cloudtrain.runtime.reports import HYPERTUNE_LOCAL, MLFLOW_LOCAL, hypertune_reports, mlflow_reports


class MetricTail:
    """New values of one metric in a run directory; a ``metrics.jsonl`` line still being written is
    left for the next read. Each value's step is its ordinal (1, 2, ...), so trials that log at other
    optimizer steps (another batch size) are compared report by report (epoch by epoch)."""

    SOURCES = ("metrics.jsonl", "hypertune", "mlflow")

    def __init__(self, run_dir: Path, metric: str) -> None:
        self.run_dir, self.metric = Path(run_dir), metric
        self.source: str | None = None
        self.position = 0  # in metrics.jsonl
        self.mlflow_seen = 0  # values already taken from MLflow
        self.hypertune_after = float("-inf")  # the timestamp of the last hypertune report taken
        self.hypertune_at_last = 0  # how many reports taken have that timestamp
        self.values: list[float] = []

    def read(self) -> list[tuple[int, float]]:
        """The values reported since the last read, as (ordinal step, value)."""
        for source in ([self.source] if self.source else self.SOURCES):
            new = getattr(self, "_" + source.replace(".", "_"))()
            if new:
                self.source = source
                start = len(self.values)
                self.values.extend(new)
                return [(start + index + 1, value) for index, value in enumerate(new)]
        return []

    def _metrics_jsonl(self) -> list[float]:
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return []
        new: list[float] = []
        with open(path, "rb") as handle:
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
                    new.append(float(item["value"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return new

    def _hypertune(self) -> list[float]:
        """The reports after the last one taken: the file holds the last 100, oldest first, so a
        report is new when it is later than the last taken (or as late, beyond those taken)."""
        reports = hypertune_reports(self.run_dir / HYPERTUNE_LOCAL, self.metric)
        same = [r for r in reports if r.timestamp == self.hypertune_after][self.hypertune_at_last:]
        later = [r for r in reports if r.timestamp > self.hypertune_after]
        if later:
            self.hypertune_after = later[-1].timestamp
            self.hypertune_at_last = sum(r.timestamp == self.hypertune_after for r in later)
        else:
            self.hypertune_at_last += len(same)
        return [r.value for r in same + later]

    def _mlflow(self) -> list[float]:
        reports = mlflow_reports(self.run_dir / MLFLOW_LOCAL, self.metric)[self.mlflow_seen:]
        self.mlflow_seen += len(reports)
        return [r.value for r in reports]

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None
