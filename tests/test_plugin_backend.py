"""A backend from another package (``tests/plugins/toyct``), known to cloudtrain only through its
``cloudtrain.providers`` entry point, works exactly like a built-in: the spec's and config's
``toy:`` section with its own validation, ``CLOUDTRAIN_TOY_*`` variables, ``--cloud`` choices,
submit/status/logs/list, estimate (unpriced), the Python API, and the packaged conformance suite.

The package is installed once per session with pip into a temporary directory (offline, from its
source, no build isolation); the CLI runs in subprocesses with that directory on ``PYTHONPATH``, and
in-process tests put it on ``sys.path`` (and take it off again) around a registry refresh.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.providers import registry
from cloudtrain.testing import *  # noqa: F401,F403 - the conformance suite, run on the toy backend below
from cloudtrain.testing import SUCCEEDS, Backend, write_project

PLUGIN_SOURCE = Path(__file__).parent / "plugins" / "toyct"


@pytest.fixture(scope="session")
def toy_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed toyct package and its entry point (its dist-info)."""
    work = tmp_path_factory.mktemp("toyct")
    source = work / "source"
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "--target", str(site), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    assert (site / "toyct" / "__init__.py").is_file()
    return site


@pytest.fixture
def toy_installed(toy_site: Path) -> Iterator[Path]:
    """The toy package importable in this process and the registry re-read; undone afterwards."""
    sys.path.insert(0, str(toy_site))
    importlib.invalidate_caches()
    registry.refresh()
    try:
        yield toy_site
    finally:
        sys.path.remove(str(toy_site))
        for name in [m for m in sys.modules if m == "toyct" or m.startswith("toyct.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        registry.refresh()


def cloudtrain_cli(site: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cloudtrain", *args], capture_output=True, text=True, env=environ,
                          cwd=cwd, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def toy_spec(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", SUCCEEDS)


# -- the registry sees it through the entry point only ---------------------------------------------


def test_toy_is_a_backend_only_once_its_package_is_installed(toy_site: Path) -> None:
    assert "toy" not in registry.names() and "toy" not in registry.BUILTIN
    sys.path.insert(0, str(toy_site))
    importlib.invalidate_caches()
    registry.refresh()
    try:
        assert registry.names()[-1] == "toy"
        cls = registry.provider_class("toy")
        assert cls.__module__ == "toyct" and cls.settings_model.__name__ == "ToySettings"
    finally:
        sys.path.remove(str(toy_site))
        sys.modules.pop("toyct", None)
        registry.refresh()
    assert "toy" not in registry.names()


# -- the command line, as with a built-in backend ---------------------------------------------------


def test_validate_accepts_a_toy_section_and_refuses_a_wrong_queue(toy_site: Path, toy_spec: Path) -> None:
    data = json.loads(ok(cloudtrain_cli(toy_site, "validate", str(toy_spec), "--set", "toy.queue=gpu", "--json")))
    assert data["spec"]["toy"]["queue"] == "gpu"
    bad = cloudtrain_cli(toy_site, "validate", str(toy_spec), "--set", "toy.queue=tpu")
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    assert "toy.queue" in bad.stderr and "Traceback" not in bad.stderr
    without = cloudtrain_cli(toy_site.parent, "validate", str(toy_spec), "--set", "toy.queue=gpu")
    assert without.returncode == 2 and "toy" in without.stderr  # not installed: no such section


def test_dry_run_renders_and_variables_and_project_config_are_honoured(toy_site: Path, toy_spec: Path, tmp_path: Path) -> None:
    root = tmp_path / "toy-cloud"
    dry = ok(cloudtrain_cli(toy_site, "submit", str(toy_spec), "--cloud", "toy", "--dry-run", "--json",
                            env={"CLOUDTRAIN_TOY_ROOT": str(root), "CLOUDTRAIN_TOY_QUEUE": "gpu"}))
    request = json.loads(dry)["request"]
    assert request["queue"] == "gpu" and request["job_dir"].startswith(str(root))
    assert not root.exists()  # a dry run sends nothing
    (toy_spec.parent / "cloudtrain.yaml").write_text(f"toy: {{root: {root}, queue: gpu}}\n")
    text = ok(cloudtrain_cli(toy_site, "submit", str(toy_spec), "--cloud", "toy", "--dry-run"))
    assert "toy request for conformance-" in text and '"queue": "gpu"' in text
    (toy_spec.parent / "cloudtrain.yaml").write_text("toy: {queue: tpu}\n")
    bad = cloudtrain_cli(toy_site, "submit", str(toy_spec), "--cloud", "toy", "--dry-run")
    assert bad.returncode == 2 and "toy.queue" in bad.stderr, (bad.stdout, bad.stderr)


def test_submit_then_status_logs_list_follow_the_job(toy_site: Path, toy_spec: Path, tmp_path: Path) -> None:
    root = tmp_path / "toy-cloud"
    submitted = json.loads(ok(cloudtrain_cli(toy_site, "submit", str(toy_spec), "--cloud", "toy", "--set", f"toy.root={root}", "--json")))
    job = submitted["id"]
    assert submitted["cloud"] == "toy" and (root / "jobs" / job / "job.json").is_file()
    waited = json.loads(ok(cloudtrain_cli(toy_site, "wait", job, "--poll", "0.1", "--timeout", "120", "--json")))
    assert waited["state"] == "SUCCEEDED", waited
    status = json.loads(ok(cloudtrain_cli(toy_site, "status", job, "--json")))
    assert status["state"] == "SUCCEEDED" and status["cloud"] == "toy"
    assert "test accuracy: 0.970" in ok(cloudtrain_cli(toy_site, "logs", job))
    listed = json.loads(ok(cloudtrain_cli(toy_site, "list", "--cloud", "toy", "--json")))
    assert [row["id"] for row in listed] == [job]


def test_estimate_shows_the_toy_backend_unpriced(toy_site: Path, toy_spec: Path) -> None:
    text = ok(cloudtrain_cli(toy_site, "estimate", str(toy_spec), env={"COLUMNS": "200"}))
    toy_rows = [line for line in text.splitlines() if line.split()[:1] == ["toy"]]
    assert toy_rows and "no sourced price" in toy_rows[0], text


def test_a_misspelt_cloud_is_refused_with_a_suggestion(toy_site: Path, toy_spec: Path) -> None:
    result = cloudtrain_cli(toy_site, "submit", str(toy_spec), "--cloud", "tyo", "--dry-run")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "did you mean 'toy'" in result.stderr


# -- the Python API -------------------------------------------------------------------------------


def test_python_api_submits_to_the_toy_backend(toy_installed: Path, toy_spec: Path, tmp_path: Path) -> None:
    import cloudtrain

    job = cloudtrain.Job.from_file(toy_spec, overrides={"toy.root": str(tmp_path / "toy-cloud")})
    assert job.dry_run("toy").payload["queue"] == "cpu"
    run = job.submit("toy").wait(timeout=120, poll_seconds=0.1)
    assert run.cloud == "toy" and run.state.value == "SUCCEEDED"
    assert run.metrics == {"test_accuracy": 0.97}
    assert [r.id for r in cloudtrain.runs(cloud="toy")] == [run.id]


# -- the packaged conformance suite, on the toy backend ---------------------------------------------


@pytest.fixture
def backend(toy_installed: Path, tmp_path: Path) -> Iterator[Backend]:
    from toyct import ToyProvider, job_count

    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    root = tmp_path / "toy-cloud"
    yield Backend(
        name="toy",
        runner=Runner(store=JobStore(tmp_path / "jobs.db"), providers={"toy": ToyProvider()}),
        overrides=[f"toy.root={root}"],
        created_jobs=lambda: job_count(root),
        unsupported=(["spot.enabled=true"], "spot.enabled: the toy backend has no spot capacity"),
    )


