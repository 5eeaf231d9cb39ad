"""Shared fixtures: an isolated cloudtrain home and config, and small job projects on disk."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """azure-ai-ml's schemas use marshmallow features that marshmallow 3.2x warns about (hundreds
    of lines a run): not ours to fix. Filtered by class, for the classes this marshmallow has."""
    try:
        from marshmallow import warnings as marshmallow_warnings
    except ImportError:
        return
    for name in ("RemovedInMarshmallow4Warning", "ChangedInMarshmallow4Warning"):
        if hasattr(marshmallow_warnings, name):
            config.addinivalue_line("filterwarnings", f"ignore::marshmallow.warnings.{name}")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own CLOUDTRAIN_HOME and user config directory; no cloud settings leak in."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CLOUDTRAIN_HOME", str(home / "cloudtrain"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    for key in list(__import__("os").environ):
        if (key.startswith("CLOUDTRAIN_") and key != "CLOUDTRAIN_HOME") or key in (
                "AWS_REGION", "AWS_DEFAULT_REGION", "AZURE_SUBSCRIPTION_ID", "GOOGLE_CLOUD_PROJECT"):
            monkeypatch.delenv(key)
    return home


def write_project(root: Path, script: str, spec: str, script_name: str = "train.py") -> Path:
    """A job project: ``root/<script_name>`` and ``root/job.yaml``; returns the spec path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / script_name).write_text(textwrap.dedent(script))
    spec_path = root / "job.yaml"
    spec_path.write_text(textwrap.dedent(spec))
    return spec_path


@pytest.fixture
def project(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory: project(script, spec=None, **spec_extra) -> spec path."""

    def make(script: str, spec: str | None = None) -> Path:
        spec = spec or "name: tiny\ncode: .\nentrypoint: train.py\n"
        return write_project(tmp_path / "proj", script, spec)

    return make


PYTHON = sys.executable
