"""What a script reported, read back from the files a local run leaves in its run directory.

Scripts report metrics three ways, and each cloud's tuning service reads one of them:

- ``metrics.jsonl``: ``context().log_metric``, and the spec's ``metrics`` with a ``regex`` found in
  the output (what SageMaker reads from the logs);
- the ``cloudml-hypertune`` metrics file (what Vertex AI reads): JSON lines, one per report, the
  metric under its tag, the file rewritten whole on each report with the last 100; the local
  executor points ``CLOUD_ML_HP_METRIC_FILE`` at ``<run dir>/hypertune/output.metrics``;
- MLflow (what Azure ML reads): the local executor points ``MLFLOW_TRACKING_URI`` at the SQLite
  store ``<run dir>/mlflow.db``, read here with ``sqlite3`` (its ``metrics`` table), never MLflow.

So a script written for any of the clouds, unchanged, reports its metrics to a local run and to a
local sweep's pruner. Stdlib only: the runtime layer.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from pathlib import Path
from typing import NamedTuple

HYPERTUNE_LOCAL = Path("hypertune") / "output.metrics"  # under the run directory
MLFLOW_LOCAL = "mlflow.db"  # under the run directory
#: keys of a cloudml-hypertune report that are not the metric's
HYPERTUNE_FIELDS = frozenset({"timestamp", "trial", "global_step", "checkpoint_path"})


class Report(NamedTuple):
    value: float
    step: int
    timestamp: float


def _reports_in(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short
        if isinstance(item, dict):
            found.append(item)
    return found


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def hypertune_reports(path: Path, metric: str) -> list[Report]:
    """The reports of ``metric`` (its tag) in a cloudml-hypertune metrics file, in order."""
    reports = []
    for item in _reports_in(path):
        try:
            value = float(item[metric])
        except (KeyError, TypeError, ValueError):
            continue
        step = _number(item.get("global_step"))
        reports.append(Report(value, int(step) if math.isfinite(step) else 0, _number(item.get("timestamp"))))
    return reports


def _mlflow_rows(db: Path, query: str, parameters: tuple = ()) -> list[tuple]:
    if not db.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as connection:
            return connection.execute(query, parameters).fetchall()
    except sqlite3.Error:  # no table yet (MLflow creates it on first use), or the store is being written
        return []


def mlflow_reports(db: Path, metric: str) -> list[Report]:
    """The values of ``metric`` in an MLflow SQLite store, in the order they were logged (NaN as NaN)."""
    rows = _mlflow_rows(db, "SELECT value, step, timestamp, is_nan FROM metrics WHERE key = ? ORDER BY rowid", (metric,))
    return [Report(math.nan if is_nan else float(value), int(step), timestamp / 1000) for value, step, timestamp, is_nan in rows]


def last_values(run_dir: Path) -> dict[str, float]:
    """The last value of each metric a run reported: from MLflow, then cloudml-hypertune, then
    ``metrics.jsonl`` (the last one's values win: they are the ones cloudtrain's own API logged)."""
    found: dict[str, float] = {}
    for key, value, is_nan in _mlflow_rows(run_dir / MLFLOW_LOCAL, "SELECT key, value, is_nan FROM metrics ORDER BY rowid"):
        found[str(key)] = math.nan if is_nan else float(value)
    for item in _reports_in(run_dir / HYPERTUNE_LOCAL):
        for key, value in item.items():
            if key not in HYPERTUNE_FIELDS:
                with contextlib.suppress(TypeError, ValueError):
                    found[str(key)] = float(value)
    for item in _reports_in(run_dir / "metrics.jsonl"):
        try:
            found[str(item["name"])] = float(item["value"])
        except (KeyError, TypeError, ValueError):
            continue
    return found
