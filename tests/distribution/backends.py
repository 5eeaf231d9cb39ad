"""Emulated backends for the distribution tests: the local executor and the emulators, through cloudtrain."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

@contextmanager
def sagemaker_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    from cloudtrain.emulators.sagemaker import SageMakerEmulator
    from cloudtrain.providers.sagemaker import SageMakerProvider
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    with SageMakerEmulator(root=tmp_path / "sagemaker", stop_grace_seconds=2.0) as emulator:
        for key, value in emulator.environment().items():
            monkeypatch.setenv(key, value)
        yield Runner(store=JobStore(tmp_path / "jobs.db"), providers={"sagemaker": SageMakerProvider()}), []
        emulator.wait_idle()


@contextmanager
def vertex_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    from cloudtrain.emulators.vertex import VertexEmulator
    from cloudtrain.providers.vertex import VertexProvider
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    with VertexEmulator(root=tmp_path / "vertex-emulator", grace_seconds=5.0, poll_seconds=0.1) as emulator:
        provider = VertexProvider(environ=emulator.environment(), retry_seconds=0.05, poll_seconds=0.1)
        yield (Runner(store=JobStore(tmp_path / "jobs.db"), providers={"vertex": provider}),
               [f"vertex.project={emulator.project}", f"vertex.location={emulator.location}",
                f"vertex.staging_bucket=gs://{emulator.bucket}"])


@contextmanager
def azureml_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    from cloudtrain.emulators.azureml import AzureMLEmulator
    from cloudtrain.providers.azureml import AzureMLProvider
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    with AzureMLEmulator(tmp_path / "azureml-emulator", grace_seconds=5.0) as emulator:
        yield (Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": AzureMLProvider(credential=emulator.credential)}),
               list(emulator.overrides))


BACKENDS = {"sagemaker": sagemaker_backend, "vertex": vertex_backend, "azureml": azureml_backend}


def run_job(cloud: str, spec_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> tuple[Any, str]:
    """Submit the spec to the emulated cloud, wait for the end: (final status, the job's logs)."""
    from cloudtrain.specfile import load_spec

    with BACKENDS[cloud](tmp_path, monkeypatch) as (runner, base):
        plan = runner.plan(load_spec(spec_path, [*base, *overrides]), cloud)
        record = runner.submit(plan).record
        _, status = runner.wait(record.id, poll_seconds=0.1, timeout=180)
        return status, "\n".join(runner.logs(record.id))


def write_project(root: Path, script: str, spec: str) -> Path:
    """A job project: ``root/train.py`` and ``root/job.yaml``; returns the spec path."""
    import textwrap

    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(textwrap.dedent(script))
    (root / "job.yaml").write_text(spec)
    return root / "job.yaml"
