"""What is shown when a cloud cannot be asked, and how waits and cancels end."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtrain.errors import ProviderError, WaitTimeoutError
from cloudtrain.providers import JobRef, JobState, JobStatus, NativeRequest, Provider
from cloudtrain.runner import Runner
from cloudtrain.specfile import build_spec
from cloudtrain.store import JobStore


class Unreachable(Provider):
    """A backend whose control plane answers once (the create), then is unreachable."""

    name = "sagemaker"  # planned like SageMaker, with an exact instance type
    machines_from_catalog = True
    calls = 0

    def render(self, plan):  # type: ignore[no-untyped-def]
        return NativeRequest(cloud=self.name, payload={"name": plan.job_name})

    def create(self, plan, request) -> str:  # type: ignore[no-untyped-def]
        return plan.job_name

    def status(self, ref: JobRef) -> JobStatus:
        type(self).calls += 1
        raise ProviderError("cannot reach AWS while trying to describe the job: connection refused", "check the network")

    def cancel(self, ref: JobRef) -> None:
        raise AssertionError("not reached")


class Running(Unreachable):
    def status(self, ref: JobRef) -> JobStatus:
        return JobStatus(state=JobState.RUNNING, native_state="InProgress")


def submitted(tmp_path: Path, provider: Provider) -> tuple[Runner, str]:
    loaded = build_spec({"name": "offline", "code": ".", "entrypoint": "t.py",
                         "resources": {"instance_type": {"sagemaker": "ml.m5.xlarge"}}}, source="job.yaml", base_dir=tmp_path)
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"sagemaker": provider})
    return runner, runner.submit(runner.plan(loaded, "sagemaker")).record.id


def test_status_and_list_show_the_stored_state_when_the_cloud_cannot_be_asked(tmp_path: Path) -> None:
    runner, job = submitted(tmp_path, Unreachable())
    with pytest.raises(ProviderError):
        runner.status(job)
    record, status = runner.status(job, stored_if_unreachable=True)
    assert status.state is JobState.PENDING and "could not be asked" in (status.message or "")
    assert [r.id for r in runner.list()] == [job] and "sagemaker" in runner.unreachable


def test_a_finished_cloud_job_is_shown_without_the_cloud(tmp_path: Path) -> None:
    runner, job = submitted(tmp_path, Unreachable())
    runner.store.update(job, state=JobState.SUCCEEDED, details={"model_uri": "s3://b/model.tar.gz"})
    Unreachable.calls = 0
    record, status = runner.status(job)
    assert status.state is JobState.SUCCEEDED and status.model_uri == "s3://b/model.tar.gz" and Unreachable.calls == 0


def test_wait_timeout_is_its_own_error_and_leaves_the_job(tmp_path: Path) -> None:
    runner, job = submitted(tmp_path, Running())
    with pytest.raises(WaitTimeoutError) as caught:
        runner.wait(job, timeout=0.01, poll_seconds=0.01)
    assert caught.value.exit_code == 124 and "goes on" in caught.value.message
    assert runner.store.get(job).state is JobState.RUNNING


def test_a_submission_killed_before_the_create_is_found_and_resumable(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "code").mkdir()
    loaded = build_spec({"name": "offline", "code": ".", "entrypoint": "t.py",
                         "resources": {"instance_type": {"sagemaker": "ml.m5.xlarge"}}}, source="job.yaml", base_dir=tmp_path / "code")
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"sagemaker": Unreachable()})
    plan = runner.plan(loaded, "sagemaker")
    record = runner._record(plan)  # recorded, then the client was SIGKILLed during the upload
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runner.store.update(record.id, details={"submitter": {"pid": dead.pid, "started": "0"}})
    again, status = runner.status(record.id)
    assert status.state is JobState.PENDING and "--resume" in (status.message or "")
    resumed = runner.resume_plan(loaded, record.id)
    assert resumed.job_name == record.id and resumed.submission_token == plan.submission_token
