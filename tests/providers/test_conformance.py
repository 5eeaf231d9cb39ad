"""One suite, every backend: submit, follow, logs, model, cancel, failure, plan-time refusal, faults."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from cloudtrain.errors import UnsupportedFeatureError, UsageError
from cloudtrain.providers.base import JobState
from cloudtrain.specfile import load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-sklearn.yaml"

WAITS_FOR_SIGTERM = """
import signal, sys, threading
from cloudtrain.runtime import context
context()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
print("training started", flush=True)
stop.wait()
print("stopping cleanly", flush=True)
sys.exit(0)
"""

FAILS = """
from cloudtrain.runtime import context
context()
print("loading data", flush=True)
raise RuntimeError("the training data is empty")
"""


def project(tmp_path: Path, script: str) -> Path:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "train.py").write_text(textwrap.dedent(script))
    spec = tmp_path / "proj" / "job.yaml"
    spec.write_text("name: conformance\ncode: .\nentrypoint: train.py\nframework: {name: sklearn, version: '1.2-1'}\n"
                    "resources: {cpus: 2}\nmax_runtime: 30m\n")
    return spec


def submit(backend, spec_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    loaded = load_spec(spec_path, [*backend.overrides, *extra])
    runner = backend.runner
    return runner.submit(runner.plan(loaded, backend.name)).record


def wait_until(predicate, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_example_job_succeeds_with_logs_and_model(backend) -> None:  # type: ignore[no-untyped-def]
    record = submit(backend, EXAMPLE)
    final, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    logs = "\n".join(backend.runner.logs(record.id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert "test accuracy" in logs and "cloudtrain-metric name=test_accuracy" in logs
    assert status.model_uri
    assert final.state is JobState.SUCCEEDED and backend.runner.store.get(record.id).state is JobState.SUCCEEDED


def test_cancel_a_long_job(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = submit(backend, project(tmp_path, WAITS_FOR_SIGTERM))
    wait_until(lambda: any("training started" in line for line in backend.runner.logs(record.id)), "the job to start")
    backend.runner.cancel(record.id)
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=120)
    assert status.state is JobState.CANCELLED


def test_failing_entrypoint_is_failed_with_its_error(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = submit(backend, project(tmp_path, FAILS))
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=120)
    assert status.state is JobState.FAILED
    assert "the training data is empty" in (status.message or "")


def test_unsupported_feature_is_refused_at_plan_time(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    overrides, message = backend.unsupported
    loaded = load_spec(project(tmp_path, FAILS), [*backend.overrides, *overrides], check_files=False)
    before = backend.created_jobs() if backend.created_jobs else None
    with pytest.raises(UnsupportedFeatureError) as caught:
        backend.runner.plan(loaded, backend.name)
    assert caught.value.message.startswith(message)
    if before is not None:
        assert backend.created_jobs() == before


@pytest.mark.parametrize("fault", ["throttle", "server_error", "drop_after_create"])
def test_faults_create_exactly_one_job(backend, fault: str) -> None:  # type: ignore[no-untyped-def]
    if backend.inject is None:
        pytest.skip(f"{backend.name} has no control plane to fail")
    before = backend.created_jobs()
    backend.inject(fault, 2 if fault != "drop_after_create" else 1)
    record = submit(backend, EXAMPLE)
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED
    assert backend.created_jobs() == before + 1


def submit_interrupted(backend, plan, reached_the_cloud: bool) -> None:  # type: ignore[no-untyped-def]
    """Submit ``plan`` as if the user's Ctrl-C (or a crash) came before the answer was recorded:
    after the provider's create call, or before it."""
    provider = backend.runner.provider(backend.name)
    real_submit = provider.submit

    def interrupted(plan, request):  # type: ignore[no-untyped-def]
        if reached_the_cloud:
            real_submit(plan, request)
        raise KeyboardInterrupt

    provider.submit = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            backend.runner.submit(plan)
    finally:
        del provider.submit


@pytest.mark.parametrize("reached_the_cloud", [True, False], ids=["create-reached-the-cloud", "create-never-sent"])
def test_an_interrupted_submission_is_resumed_into_exactly_one_job(backend, reached_the_cloud: bool) -> None:  # type: ignore[no-untyped-def]
    if backend.created_jobs is None:
        pytest.skip(f"{backend.name} has no cloud side to count jobs on")
    runner, before = backend.runner, backend.created_jobs()
    loaded = load_spec(EXAMPLE, backend.overrides)
    plan = runner.plan(loaded, backend.name)
    submit_interrupted(backend, plan, reached_the_cloud)
    pending = runner.store.find_by_token(backend.name, plan.submission_token)
    assert pending.state is JobState.PENDING and "--resume" in (pending.message or "")

    record = runner.submit(runner.resume_plan(loaded, pending.id)).record
    assert record.id == pending.id and record.message is None
    with pytest.raises(UsageError, match="only a submission that was interrupted"):
        runner.resume_plan(loaded, pending.id)  # sent now: a second resume could only duplicate it
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED
    assert backend.created_jobs() == before + 1


def test_resume_keeps_spot_and_refuses_changed_code_or_spec(backend, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if backend.created_jobs is None:
        pytest.skip(f"{backend.name} has no cloud side to resume on")
    spec_path = project(tmp_path, FAILS)
    loaded = load_spec(spec_path, [*backend.overrides, "spot.enabled=true"])
    runner = backend.runner
    plan = runner.plan(loaded, backend.name)
    assert plan.spot
    submit_interrupted(backend, plan, reached_the_cloud=False)
    job_id = plan.job_name
    resumed = runner.resume_plan(loaded, job_id)
    assert (resumed.job_name, resumed.submission_token, resumed.spot) == (plan.job_name, plan.submission_token, True)
    assert resumed.instance_type == plan.instance_type

    with pytest.raises(UsageError, match="this spec differs"):
        runner.resume_plan(load_spec(spec_path, backend.overrides), job_id)  # spot off: another submission
    (spec_path.parent / "train.py").write_text("print('edited')\n")
    with pytest.raises(UsageError, match="the code under .* changed"):
        runner.resume_plan(loaded, job_id)
