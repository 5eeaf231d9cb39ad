"""The conformance tests: one suite, every backend (see :mod:`cloudtrain.testing` for how to run
it). Submit, follow, logs, metrics and model; cancel; failure with its error; plan-time refusal;
faults that still create exactly one job, at each step of a submission (the fault matrix); an
interrupted submission resumed into exactly one job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from cloudtrain.errors import UnsupportedFeatureError, UsageError
from cloudtrain.providers.base import JobState
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec
from cloudtrain.testing.backend import Backend, InterruptedSubmission
from cloudtrain.testing.projects import FAILS, SUCCEEDS, WAITS_FOR_SIGTERM, write_project

JOB_TIMEOUT = 300.0


def _submit(backend: Backend, spec_path: Path, *extra: str) -> Any:
    loaded = load_spec(spec_path, [*backend.overrides, *extra])
    runner = backend.runner
    return runner.submit(runner.plan(loaded, backend.name)).record


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _submit_interrupted(backend: Backend, plan: Any, reached_the_cloud: bool) -> None:
    """Submit ``plan`` through the backend's store as if interrupted after the create call, or before."""
    interrupted = Runner(store=backend.runner.store,
                         providers={backend.name: InterruptedSubmission(backend.provider, reached_the_cloud)})
    with pytest.raises(KeyboardInterrupt):
        interrupted.submit(plan)


def test_succeeding_job_has_logs_metrics_and_model(backend: Backend, tmp_path: Path) -> None:
    record = _submit(backend, write_project(tmp_path / "succeeds", SUCCEEDS))
    final, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=JOB_TIMEOUT)
    logs = "\n".join(backend.runner.logs(record.id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert "test accuracy: 0.970" in logs, logs
    assert "cloudtrain-metric name=test_accuracy value=0.97" in logs, logs
    assert status.model_uri, status
    assert final.state is JobState.SUCCEEDED
    assert backend.runner.store.get(record.id).state is JobState.SUCCEEDED


def test_cancel_a_long_job(backend: Backend, tmp_path: Path) -> None:
    record = _submit(backend, write_project(tmp_path / "waits", WAITS_FOR_SIGTERM))
    _wait_until(lambda: any("training started" in line for line in backend.runner.logs(record.id)), "the job to start")
    backend.runner.cancel(record.id)
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=120)
    assert status.state is JobState.CANCELLED, status


def test_failing_entrypoint_is_failed_with_its_error(backend: Backend, tmp_path: Path) -> None:
    record = _submit(backend, write_project(tmp_path / "fails", FAILS))
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=120)
    assert status.state is JobState.FAILED, status
    assert "the training data is empty" in (status.message or ""), status


def test_unsupported_feature_is_refused_at_plan_time(backend: Backend, tmp_path: Path) -> None:
    if backend.unsupported is None:
        pytest.skip(f"the {backend.name} fixture names nothing the backend refuses (Backend.unsupported)")
    overrides, message = backend.unsupported
    loaded = load_spec(write_project(tmp_path / "refused", FAILS), [*backend.overrides, *overrides], check_files=False)
    before = backend.created_jobs() if backend.created_jobs else None
    with pytest.raises(UnsupportedFeatureError) as caught:
        backend.runner.plan(loaded, backend.name)
    assert caught.value.message.startswith(message), caught.value.message
    if before is not None:
        assert backend.created_jobs() == before


@pytest.mark.parametrize("fault", ["throttle", "server_error", "drop_after_create"])
def test_faults_create_exactly_one_job(backend: Backend, fault: str, tmp_path: Path) -> None:
    if backend.inject is None or backend.created_jobs is None:
        pytest.skip(f"{backend.name} has no control plane to fail")
    before = backend.created_jobs()
    backend.inject(fault, 2 if fault != "drop_after_create" else 1)
    record = _submit(backend, write_project(tmp_path / "succeeds", SUCCEEDS))
    _, status = backend.runner.wait(record.id, poll_seconds=0.1, timeout=JOB_TIMEOUT)
    assert status.state is JobState.SUCCEEDED, status
    assert backend.created_jobs() == before + 1


FAULT_STEPS = ("upload", "create", "status")
FAULT_KINDS = ("throttle", "server_error", "drop_before", "drop_after")


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("step", FAULT_STEPS)
def test_fault_matrix(backend: Backend, step: str, kind: str, tmp_path: Path) -> None:
    """A fault at one step of a submission (staging upload, create, first status): throttled, a 5xx,
    the connection dropped before the call reached the service or after it took effect. After what
    the user is told to do (nothing, or ``submit --resume``), exactly one cloud job exists and the
    store agrees with the cloud."""
    if backend.faults is None or step not in backend.fault_steps:
        pytest.skip(f"{backend.name}: no emulator operation to fail at the {step} step")
    from cloudtrain.errors import SubmissionUncertainError

    runner, before = backend.runner, backend.created_jobs() if backend.created_jobs else 0
    loaded = load_spec(write_project(tmp_path / "succeeds", SUCCEEDS), backend.overrides)
    plan = runner.plan(loaded, backend.name)
    backend.faults.add(kind, 1, backend.fault_steps[step])
    try:
        record = runner.submit(plan).record
    except SubmissionUncertainError:  # the user's retry, as the message says
        record = runner.submit(runner.resume_plan(loaded, plan.job_name)).record
    final, status = runner.wait(record.id, poll_seconds=0.1, timeout=JOB_TIMEOUT)
    assert backend.faults.count(kind) >= 1, f"the {kind} fault at {backend.fault_steps[step]} was never injected"
    assert status.state is JobState.SUCCEEDED, status
    if backend.created_jobs is not None:
        assert backend.created_jobs() == before + 1
    stored = runner.store.get(record.id)
    assert stored.state is JobState.SUCCEEDED and stored.native_id == final.native_id


@pytest.mark.parametrize("reached_the_cloud", [True, False], ids=["create-reached-the-cloud", "create-never-sent"])
def test_an_interrupted_submission_is_resumed_into_exactly_one_job(backend: Backend, reached_the_cloud: bool,
                                                                    tmp_path: Path) -> None:
    if backend.created_jobs is None:
        pytest.skip(f"{backend.name} has no cloud side to count jobs on")
    runner, before = backend.runner, backend.created_jobs()
    loaded = load_spec(write_project(tmp_path / "succeeds", SUCCEEDS), backend.overrides)
    plan = runner.plan(loaded, backend.name)
    _submit_interrupted(backend, plan, reached_the_cloud)
    pending = runner.store.find_by_token(backend.name, plan.submission_token)
    assert pending is not None and pending.state is JobState.PENDING and "--resume" in (pending.message or ""), pending
    assert backend.created_jobs() == before + (1 if reached_the_cloud else 0)

    record = runner.submit(runner.resume_plan(loaded, pending.id)).record
    assert record.id == pending.id and record.message is None, record
    with pytest.raises(UsageError, match="only a submission that was interrupted"):
        runner.resume_plan(loaded, pending.id)  # sent now: a second resume could only duplicate it
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=JOB_TIMEOUT)
    assert status.state is JobState.SUCCEEDED, status
    assert backend.created_jobs() == before + 1


def test_resume_keeps_spot_and_refuses_changed_code_or_spec(backend: Backend, tmp_path: Path) -> None:
    if backend.created_jobs is None:
        pytest.skip(f"{backend.name} has no cloud side to resume on")
    spot = backend.provider.capabilities.spot  # without spot capacity, another setting tells the specs apart
    chosen, other = (["spot.enabled=true"], []) if spot else (["hyperparameters.attempt=1"], ["hyperparameters.attempt=2"])
    spec_path = write_project(tmp_path / "resumed", FAILS)
    loaded = load_spec(spec_path, [*backend.overrides, *chosen])
    runner = backend.runner
    plan = runner.plan(loaded, backend.name)
    assert plan.spot is spot
    _submit_interrupted(backend, plan, reached_the_cloud=False)
    job_id = plan.job_name
    resumed = runner.resume_plan(loaded, job_id)
    assert (resumed.job_name, resumed.submission_token, resumed.spot) == (plan.job_name, plan.submission_token, spot)
    assert resumed.instance_type == plan.instance_type

    with pytest.raises(UsageError, match="this spec differs"):
        runner.resume_plan(load_spec(spec_path, [*backend.overrides, *other]), job_id)  # another submission
    (spec_path.parent / "train.py").write_text("print('edited')\n")
    with pytest.raises(UsageError, match="the code under .* changed"):
        runner.resume_plan(loaded, job_id)
