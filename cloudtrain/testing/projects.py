"""The small job projects the conformance suite submits, written into temporary directories."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: succeeds: checks its hyperparameter (flag and context), prints "test accuracy", logs a metric and saves a model
SUCCEEDS = """
import sys
from cloudtrain.runtime import context

ctx = context()
if int(ctx.hp("epochs", 0)) != 1:
    sys.exit(f"hyperparameter epochs did not arrive: {ctx.hp('epochs')!r}")
if sys.argv[1:] != ["--epochs", "1"]:  # hyperparameters reach the script as --name value flags too
    sys.exit(f"the script's arguments are {sys.argv[1:]}, not --epochs 1")
print("training for 1 epoch", flush=True)
accuracy = 0.97
print(f"test accuracy: {accuracy:.3f}", flush=True)
ctx.log_metric("test_accuracy", accuracy)
(ctx.model_dir / "model.txt").write_text("weights\\n")
print("model saved", flush=True)
"""

#: runs until SIGTERM, then exits cleanly
WAITS_FOR_SIGTERM = """
import signal, sys, threading
from cloudtrain.runtime import context
context()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
print("training started", flush=True)
stop.wait()
print("stopping cleanly", flush=True)
sys.exit(0)
"""

#: fails with an error the backend must report
FAILS = """
from cloudtrain.runtime import context
context()
print("loading data", flush=True)
raise RuntimeError("the training data is empty")
"""

SPEC = """\
name: conformance
code: .
entrypoint: train.py
framework: {name: sklearn}
hyperparameters: {epochs: 1}
resources: {cpus: 2}
metrics: [test_accuracy]
max_runtime: 30m
"""


def write_project(directory: Path, script: str) -> Path:
    """``directory/train.py`` (``script``) and ``directory/job.yaml``; returns the spec's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.py").write_text(textwrap.dedent(script))
    spec = directory / "job.yaml"
    spec.write_text(SPEC)
    return spec
