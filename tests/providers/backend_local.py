"""The local executor as a conformance-suite backend (no control plane: no faults to inject)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.runner import Runner
from cloudtrain.store import JobStore
from cloudtrain.testing import Backend

NAME = "local"


@contextmanager
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    yield Backend(
        name=NAME,
        runner=Runner(store=JobStore(tmp_path / "jobs.db")),
        overrides=[f"local.runs_dir={tmp_path / 'runs'}"],
        unsupported=(["inputs.train=gs://bucket/train"], "inputs.train: gs://bucket/train"),
    )
