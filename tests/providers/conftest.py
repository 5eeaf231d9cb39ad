"""The built-in backends for the packaged conformance suite (:mod:`cloudtrain.testing`).

Each backend is a context manager ``backend(tmp_path, monkeypatch) -> Backend`` in a module
``tests/providers/backend_<name>.py`` exposing ``NAME`` and ``backend``; this conftest discovers
them, so adding a cloud means adding one file. A cloud backend starts its emulator, builds a
:class:`~cloudtrain.runner.Runner` whose provider talks to it through the real SDK, and says how to
inject faults and count the cloud jobs that exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("cloudtrain.testing")

HERE = Path(__file__).parent
BACKEND_MODULES = sorted(p.stem for p in HERE.glob("backend_*.py"))


@pytest.fixture(params=[m.removeprefix("backend_") for m in BACKEND_MODULES])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from sweep_helpers import emulated_backend

    with emulated_backend(request.param, tmp_path, monkeypatch) as value:
        yield value
