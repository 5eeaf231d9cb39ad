"""What the cloud sweep tests share: the trial script (its objective is a known function of the
tuned value), a script whose trials run until they are stopped (``training started``, then until
SIGTERM), the spec, the trials' logged values, and the emulated backends (the conformance suite's too)."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.testing import Backend
from cloudtrain.testing.projects import WAITS_FOR_SIGTERM as STOPPABLE  # noqa: F401  (trials that run until stopped)

HERE = Path(__file__).parent

#: the objective is a known function of the tuned value: the true best trial is the x nearest 3
SCRIPT = """
import argparse
from cloudtrain.runtime import context

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
args = parser.parse_args()
loss = (args.x - 3.0) ** 2
print(f"trial x={args.x} loss={loss}", flush=True)
context().log_metric("loss", loss)
"""

#: the same trial, written for Azure ML (its objective through MLflow, as mlflow.autolog() reports)...
MLFLOW_SCRIPT = SCRIPT.replace("from cloudtrain.runtime import context", "import mlflow").replace(
    'context().log_metric("loss", loss)', 'mlflow.log_metric("loss", loss)')
#: ... and for Vertex AI (through cloudml-hypertune)
HYPERTUNE_SCRIPT = SCRIPT.replace("from cloudtrain.runtime import context", "import hypertune").replace(
    'context().log_metric("loss", loss)',
    'hypertune.HyperTune().report_hyperparameter_tuning_metric(hyperparameter_metric_tag="loss", metric_value=loss)')

SPEC = """
name: tune-x
code: .
entrypoint: train.py
framework: {name: sklearn}
hyperparameters: {epochs: 1, x: 0.0}  # the trials get their own x, never this one
resources: {cpus: 2}
max_runtime: 10m
sweep:
  objective: {metric: loss, goal: minimize}
  parameters:
    x: {type: float, min: 0.0, max: 6.0}
  algorithm: random
  early_stopping: none
  max_trials: 4
  max_parallel: 2
"""


def write_spec(tmp_path: Path, spec: str = SPEC, script: str = SCRIPT) -> Path:
    """A code directory with ``train.py`` (``script``) and ``job.yaml`` (``spec``); the spec's path."""
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "train.py").write_text(textwrap.dedent(script))
    (tmp_path / "job" / "job.yaml").write_text(spec)
    return tmp_path / "job" / "job.yaml"


def logged_trials(lines: list[str]) -> dict[str, tuple[float, float]]:
    """Trial -> (its x, its loss) from the sweep's log lines (``[<trial>] trial x=... loss=...``;
    Vertex's ``[trial N]`` gives ``N``)."""
    found = {}
    for line in lines:
        match = re.match(r"^\[(?:trial )?(\S+)\] trial x=(\S+) loss=(\S+)$", line)
        if match:
            found[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return found


@contextmanager
def emulated_backend(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """The conformance suite's backend ``name`` (``tests/providers/backend_<name>.py``): its emulator and runner."""
    sys.path.insert(0, str(HERE))
    try:
        module = importlib.import_module(f"backend_{name}")
    finally:
        sys.path.remove(str(HERE))
    with module.backend(tmp_path, monkeypatch) as value:
        yield value
