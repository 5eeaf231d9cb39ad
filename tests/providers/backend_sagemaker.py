"""SageMaker, through the real boto3 client, against the SageMaker emulator on 127.0.0.1."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from provider_backends import Backend

from cloudtrain.emulators.sagemaker import SageMakerEmulator
from cloudtrain.providers.sagemaker import SageMakerProvider
from cloudtrain.runner import Runner

NAME = "sagemaker"


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def backend(tmp_path: Path) -> Iterator[Backend]:
    with SageMakerEmulator(root=tmp_path / "sagemaker", stop_grace_seconds=2.0) as emulator, environment(emulator.environment()):
        faults = {"throttle": emulator.throttle, "server_error": emulator.fail_with_server_error,
                  "drop_after_create": emulator.drop_connection_after}
        yield Backend(
            name=NAME,
            runner=Runner(providers={NAME: SageMakerProvider()}),
            emulator=emulator,
            created_jobs=lambda: len(emulator.training_jobs()),
            inject=lambda fault, times: faults[fault](times),
            unsupported=(["inputs.train=gs://bucket/train"], "inputs.train: gs://bucket/train"),
        )
        emulator.wait_idle()
