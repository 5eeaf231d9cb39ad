"""The local executor as a conformance-suite backend (no control plane: no faults to inject)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from provider_backends import Backend

from cloudtrain.runner import Runner

NAME = "local"


@contextmanager
def backend(tmp_path: Path) -> Iterator[Backend]:
    yield Backend(
        name=NAME,
        runner=Runner(),
        overrides=[],
        unsupported=(["inputs.train=gs://bucket/train"], "inputs.train: gs://bucket/train"),
    )
