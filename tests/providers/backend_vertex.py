"""Vertex AI as a conformance-suite backend: the provider talks to :class:`VertexEmulator` through
the real ``aiplatform_v1`` REST client and ``google-cloud-storage``.

The provider reads the emulator's variables from the ``environ`` it is handed (nothing is exported
into this process). The Vertex catalog's CPU machine (n1-standard-4) has 15 GiB, so the example's
16 GiB is lowered.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.emulators.vertex import VertexEmulator
from cloudtrain.providers.vertex import VertexProvider
from cloudtrain.runner import Runner
from cloudtrain.store import JobStore
from cloudtrain.testing import Backend

NAME = "vertex"
FAULTS = {"throttle": ("throttle", "JobService.*"), "server_error": ("server_error", "JobService.*"),
          "drop_after_create": ("drop_after", "JobService.CreateCustomJob")}


@contextmanager
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with VertexEmulator(root=tmp_path / "vertex-emulator", grace_seconds=5.0, poll_seconds=0.1) as emulator:
        provider = VertexProvider(environ=emulator.environment(), retry_seconds=0.05, poll_seconds=0.1)

        def inject(fault: str, times: int) -> None:
            kind, operation = FAULTS[fault]
            emulator.faults.add(kind, times, operation)

        yield Backend(
            name=NAME,
            runner=Runner(store=JobStore(tmp_path / "jobs.db"), providers={NAME: provider}),
            overrides=[f"vertex.project={emulator.project}", f"vertex.location={emulator.location}",
                       f"vertex.staging_bucket=gs://{emulator.bucket}", "resources.memory_gib=8"],
            emulator=emulator,
            created_jobs=lambda: len(emulator.jobs()),
            inject=inject,
            unsupported=(["inputs.train=s3://bucket/train"], "inputs.train: s3://bucket/train"),
            faults=emulator.faults,  # the JobService's and Cloud Storage's (staging uploads)
            fault_steps={"upload": "Storage.Objects.Insert", "create": "JobService.CreateCustomJob",
                         "status": "JobService.GetCustomJob"},
        )
