"""SageMaker, through the real boto3 client, against the SageMaker emulator on 127.0.0.1.

boto3 reaches a custom endpoint only through ``AWS_ENDPOINT_URL``, so the emulator's variables are
set for the test with pytest's ``monkeypatch`` (undone after it).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.emulators.sagemaker import SageMakerEmulator
from cloudtrain.providers.sagemaker import SageMakerProvider
from cloudtrain.runner import Runner
from cloudtrain.store import JobStore
from cloudtrain.testing import Backend

NAME = "sagemaker"


@contextmanager
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with SageMakerEmulator(root=tmp_path / "sagemaker", stop_grace_seconds=2.0) as emulator:
        for key, value in emulator.environment().items():
            monkeypatch.setenv(key, value)
        faults = {"throttle": emulator.throttle, "server_error": emulator.fail_with_server_error,
                  "drop_after_create": emulator.drop_connection_after}
        yield Backend(
            name=NAME,
            runner=Runner(store=JobStore(tmp_path / "jobs.db"), providers={NAME: SageMakerProvider()}),
            emulator=emulator,
            created_jobs=lambda: len(emulator.training_jobs()),
            inject=lambda fault, times: faults[fault](times),
            unsupported=(["inputs.train=gs://bucket/train"], "inputs.train: gs://bucket/train"),
            faults=emulator.faults,
            fault_steps={"upload": "S3.PUT", "create": "SageMaker.CreateTrainingJob", "status": "SageMaker.DescribeTrainingJob"},
        )
        emulator.wait_idle()
