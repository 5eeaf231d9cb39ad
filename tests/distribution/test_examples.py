"""The MPI, TensorFlow-style and recurrent examples train for real: locally and on emulators."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from backends import run_job

from cloudtrain.providers.base import JobState
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

REPO = Path(__file__).resolve().parents[2]
needs_mpirun = pytest.mark.skipif(shutil.which("mpirun") is None, reason="OpenMPI's mpirun is not installed (.ci/run installs it)")


def example_project(tmp_path: Path, example: str, *scripts: str) -> Path:
    """The example spec with only the scripts it needs, in a fresh code directory."""
    code = tmp_path / "code"
    (code / "entrypoints").mkdir(parents=True)
    for script in scripts:
        shutil.copy(REPO / "entrypoints" / script, code / "entrypoints" / script)
    spec = (REPO / "examples" / example).read_text().replace("code: ..", "code: code")
    (tmp_path / "job.yaml").write_text(spec)
    return tmp_path / "job.yaml"


def run_local(spec: Path, *overrides: str) -> str:
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec, list(overrides)), "local"))
    log = (Path(record.details["run_dir"]) / "logs" / "job.log").read_text()
    assert status.state is JobState.SUCCEEDED, log
    return log


def accuracies(log: str) -> list[float]:
    return [float(v) for v in re.findall(r"final test accuracy ([0-9.]+)", log)]


@needs_mpirun
def test_mpi_example_trains_locally_and_on_the_sagemaker_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = example_project(tmp_path, "digits-mpi.yaml", "train_mpi.py", "allreduce.py")
    found = accuracies(run_local(spec, "hyperparameters.epochs=5"))
    assert len(found) == 4 and len(set(found)) == 1 and found[0] > 0.9  # every rank holds the same model
    status, logs = run_job("sagemaker", spec, tmp_path / "sm", monkeypatch, "hyperparameters.epochs=5",
                           "resources.instance_type={sagemaker: ml.c5.xlarge}")
    assert status.state is JobState.SUCCEEDED, logs
    assert accuracies(logs) == found  # the same training, wherever it runs


def test_tensorflow_example_trains_locally_and_on_the_vertex_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = example_project(tmp_path, "digits-tf-multiworker.yaml", "train_tf_multiworker.py", "allreduce.py")
    log = run_local(spec, "hyperparameters.epochs=5")
    assert "ps task 0: variables stay with the chief" in log
    found = accuracies(log)
    assert len(found) == 2 and len(set(found)) == 1 and found[0] > 0.9
    status, logs = run_job("vertex", spec, tmp_path / "vx", monkeypatch, "hyperparameters.epochs=5")
    assert status.state is JobState.SUCCEEDED, logs
    assert "chief 0 (task 0/2)" in logs and accuracies(logs) == found


def test_rnn_example_trains_a_gru_and_an_lstm(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    spec = example_project(tmp_path, "digits-rnn.yaml", "train_rnn.py", "torch_common.py", "torch_checkpoints.py", "train_cnn.py")
    for cell in ("gru", "lstm"):
        log = run_local(spec, "hyperparameters.epochs=4", f"hyperparameters.cell={cell}", "checkpoint.enabled=false")
        accuracy = float(re.findall(r"name=test_accuracy value=([0-9.]+)", log)[-1])
        assert accuracy > 0.7, log[-2000:]
        assert f", {cell}, " in log
