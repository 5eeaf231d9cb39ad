"""A tuning trial's objective, relayed to where its cloud's tuning service reads it.

Each service reads a trial's objective one way: SageMaker from the job's log lines (the
``cloudtrain-metric`` line that ``context().log_metric`` prints, matched by the tuning job's
regex), Vertex AI from the ``cloudml-hypertune`` metrics file, Azure ML from the job's MLflow run.
A script written for another cloud reports it another way (``mlflow.autolog()``, ``hypertune``),
which a local sweep reads (:mod:`cloudtrain.runtime.reports`) and the service would not: every
trial would end with no objective. So in a cloud trial (``CLOUDTRAIN_OBJECTIVE`` names the metric)
the entry shim runs the program as a child process and, while it runs and once it has ended,
reports each new value of the objective it finds in the other sources through
``context().log_metric``, which reports to the cloud's own:

- on SageMaker, from MLflow and ``cloudml-hypertune``;
- on Vertex AI, from MLflow;
- on Azure ML, from ``cloudml-hypertune``.

MLflow is read from a SQLite store of the job's, which ``MLFLOW_TRACKING_URI`` is pointed at unless
the job sets one (a tracking server of the user's own is not read); ``cloudml-hypertune``'s file is
the one ``CLOUD_ML_HP_METRIC_FILE`` names (set to one of the job's unless the job sets it). Stdlib only.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from cloudtrain.runtime.reports import Report, hypertune_reports, mlflow_reports

#: the sources each cloud's tuning service does not read, and the relay does
RELAYED = {"sagemaker": ("mlflow", "hypertune"), "vertex": ("mlflow",), "azureml": ("hypertune",)}


def prepare(environment: str) -> dict[str, Path]:
    """Point the script's reports that ``environment``'s service does not read at files of this job;
    the sources to relay from (name -> path)."""
    wanted = [name for name in RELAYED.get(environment, ()) if name != "mlflow" or not os.environ.get("MLFLOW_TRACKING_URI")]
    if not wanted:
        return {}
    home = Path(tempfile.mkdtemp(prefix="cloudtrain-objective-"))
    sources: dict[str, Path] = {}
    if "mlflow" in wanted:
        sources["mlflow"] = home / "mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{sources['mlflow']}"
    if "hypertune" in wanted:
        os.environ.setdefault("CLOUD_ML_HP_METRIC_FILE", str(home / "hypertune" / "output.metrics"))
        sources["hypertune"] = Path(os.environ["CLOUD_ML_HP_METRIC_FILE"])
    return sources


def _found(sources: dict[str, Path], metric: str) -> list[Report]:
    found: list[Report] = []
    for name, path in sources.items():
        found += mlflow_reports(path, metric) if name == "mlflow" else hypertune_reports(path, metric)
    return found


def run_relaying(argv: list[str], metric: str, sources: dict[str, Path]) -> int:
    """Run ``argv`` to its end, relaying each new report of ``metric``; its exit code (128 + the
    signal's number when a signal ended it). SIGTERM and SIGINT are passed on to it."""
    from cloudtrain.runtime.context import context

    child = subprocess.Popen(argv)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, frame: child.send_signal(received))
    relayed: set[Report] = set()
    while True:
        try:
            code: int | None = child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        for report in _found(sources, metric):
            if math.isfinite(report.value) and report not in relayed:
                relayed.add(report)
                context().log_metric(metric, report.value, report.step)
        if code is not None:
            return 128 - code if code < 0 else code
