"""Azure ML as a conformance-suite backend: the real ``MLClient`` against the in-process emulator.

Faults go to the control plane (``MachineLearningServices.*`` operations); ``drop_after_create``
drops the response of the job's PUT after the emulator accepted it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("responses")

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402
from cloudtrain.providers.azureml import AzureMLProvider  # noqa: E402
from cloudtrain.runner import Runner  # noqa: E402
from cloudtrain.store import JobStore  # noqa: E402
from cloudtrain.testing import Backend  # noqa: E402

NAME = "azureml"


@contextmanager
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with AzureMLEmulator(tmp_path / "azureml-emulator", grace_seconds=5.0) as emulator:
        runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={NAME: AzureMLProvider(credential=emulator.credential)})

        def inject(fault: str, times: int) -> None:
            if fault == "drop_after_create":
                emulator.faults.add("drop_after", times, "MachineLearningServices.Jobs.CreateOrUpdate")
            else:
                emulator.faults.add(fault, times, "MachineLearningServices.*")

        yield Backend(
            name=NAME,
            runner=runner,
            overrides=emulator.overrides,
            emulator=emulator,
            created_jobs=emulator.job_count,
            inject=inject,
            unsupported=(["inputs.train=s3://bucket/train"], "inputs.train: s3://bucket/train"),
            faults=emulator.faults,
            fault_steps={"upload": "Storage.Blob.Put", "create": "MachineLearningServices.Jobs.CreateOrUpdate",
                         "status": "MachineLearningServices.Jobs.Get"},
        )
