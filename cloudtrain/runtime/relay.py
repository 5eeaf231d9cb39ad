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

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cloudtrain.runtime.children import die_with_parent
from cloudtrain.runtime.reports import Report, hypertune_reports, mlflow_reports

#: the sources each cloud's tuning service does not read, and the relay does
RELAYED = {"sagemaker": ("mlflow", "hypertune"), "vertex": ("mlflow",), "azureml": ("hypertune",)}


def prepare(environment: str) -> dict[str, Path]:
    """Point the script's reports that ``environment``'s service does not read at files of this job;
    the sources to relay from (name -> path; ``home``: the folder to remove afterwards, if made)."""
    wanted = [name for name in RELAYED.get(environment, ()) if name != "mlflow" or not os.environ.get("MLFLOW_TRACKING_URI")]
    if not wanted:
        return {}
    home = Path(tempfile.mkdtemp(prefix="cloudtrain-objective-"))
    sources: dict[str, Path] = {"home": home}
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
        if name == "mlflow":
            found += mlflow_reports(path, metric)
        elif name == "hypertune":
            found += hypertune_reports(path, metric)
    return found


def _native_reports(metrics_file: Path | None, metric: str) -> int:
    """How many values of ``metric`` were logged through ``context().log_metric`` (its metrics
    file), the relay's own among them."""
    if metrics_file is None or not metrics_file.is_file():
        return 0
    count = 0
    for line in metrics_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            count += json.loads(line).get("name") == metric
        except (ValueError, AttributeError):
            continue
    return count


def run_relaying(argv: list[str], metric: str, sources: dict[str, Path]) -> int:
    """Run ``argv`` to its end, relaying each new report of ``metric``; its exit code (128 + the
    signal's number when a signal ended it).

    The program runs in a session of its own, so a signal to the job's process group (a cloud's stop,
    a spot interruption, torchrun's agent) reaches it once, passed on from here, and the kernel kills
    it if this process dies. Relaying stops, with one warning, if it fails, and for good once the
    program logs the metric through ``context().log_metric`` itself (that already reaches the service:
    relaying too would count each value twice)."""
    from cloudtrain.runtime.context import context

    child = subprocess.Popen(argv, start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL))  # in a session of its own: nothing else stops it
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, frame: child.send_signal(received))
    relayed: set[Report] = set()
    relaying = True
    try:
        while True:
            try:
                code: int | None = child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            if relaying:
                relaying = _relay(context(), metric, sources, relayed)
            if code is not None:
                return 128 - code if code < 0 else code
    finally:
        if child.poll() is None:  # the relay itself failed hard: the program does not outlive it
            child.terminate()
            child.wait()
        if "home" in sources:
            shutil.rmtree(sources["home"], ignore_errors=True)


def _relay(ctx: Any, metric: str, sources: dict[str, Path], relayed: set[Report]) -> bool:
    """Report the new values of ``metric``; whether to go on relaying."""
    try:
        if _native_reports(ctx.metrics_file, metric) > len(relayed):
            return False  # the program logs it itself
        for report in _found(sources, metric):
            if math.isfinite(report.value) and report not in relayed:
                relayed.add(report)
                ctx.log_metric(metric, report.value, report.step)
        return True
    except Exception as error:  # noqa: BLE001 - a relay that fails must not take the training with it
        print(f"cloudtrain entry: relaying {metric} stopped: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return False
