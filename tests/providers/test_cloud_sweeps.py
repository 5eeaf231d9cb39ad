"""Cloud sweeps end to end: `cloudtrain sweep SPEC --cloud sagemaker` submits a tuning job to the
SageMaker emulator, which runs its trials; the job store follows it with status, logs, list, wait
and cancel like any job; backends without a tuning service refuse before recording anything."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain.errors import UnsupportedFeatureError
from cloudtrain.providers.base import JobState
from cloudtrain.specfile import load_spec
from cloudtrain.sweeps import cloud as cloud_sweeps
from cloudtrain.testing import Backend

from sweep_helpers import SPEC as SHARED_SPEC
from sweep_helpers import HYPERTUNE_SCRIPT, MLFLOW_SCRIPT, STOPPABLE, emulated_backend, logged_trials, write_spec

#: x is only swept (not among the spec's hyperparameters): the trials still get it
SPEC = SHARED_SPEC.replace("hyperparameters: {epochs: 1, x: 0.0}  # the trials get their own x, never this one",
                           "hyperparameters: {epochs: 1}")


@pytest.fixture()
def sagemaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with emulated_backend("sagemaker", tmp_path, monkeypatch) as value:
        yield value


def _spec(tmp_path: Path, spec: str = SPEC) -> Path:
    return write_spec(tmp_path, spec)


def test_a_tuning_job_runs_its_trials_and_reports_the_true_best(sagemaker: Backend, tmp_path: Path) -> None:
    runner = sagemaker.runner
    loaded = load_spec(_spec(tmp_path), sagemaker.overrides)
    record = cloud_sweeps.submit(loaded, "sagemaker", runner).record
    assert record.details["kind"] == "sweep"
    trial = cloud_sweeps.plan(loaded, "sagemaker", runner, dry_run=True).estimate  # one trial's bound
    assert trial is not None and trial.max_total_usd  # a priced instance with a max_runtime
    per_trial = trial.effective_usd_per_hour * trial.max_runtime_hours
    assert record.estimate["trials"] == 4 and record.estimate["trial_max_total_usd"] == pytest.approx(per_trial, abs=1e-6)
    assert record.estimate["max_total_usd"] == round(4 * per_trial, 2)  # the sweep's bound, as `estimate` shows
    final, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    logs = list(runner.logs(record.id))
    losses = {trial: loss for trial, (_, loss) in logged_trials(logs).items()}  # "[<trial>] trial x=... loss=..."
    assert len(losses) == 4, logs  # every trial ran and its log is shown under its name
    assert len(set(losses.values())) == 4, losses  # each trial ran with its own tuned x, not the spec's x: 0.0
    best = min(losses, key=losses.get)
    assert f"best {best}: loss = " in status.message, (status.message, losses)
    assert "trials: 4 completed" in status.message, status.message
    from cloudtrain.errors import JobNotFoundError

    with pytest.raises(JobNotFoundError, match=f"'{best}' is a trial of the sweep {record.id} on sagemaker") as caught:
        runner.store.resolve(best)  # `cloudtrain status <a trial's name, as logs shows it>`
    assert f"cloudtrain logs {record.id}" in caught.value.hint
    assert final.state is JobState.SUCCEEDED and runner.store.get(record.id).state is JobState.SUCCEEDED
    assert record.id in [r.id for r in runner.list(cloud="sagemaker")]


@pytest.mark.parametrize("script", [MLFLOW_SCRIPT, HYPERTUNE_SCRIPT], ids=["mlflow", "hypertune"])
def test_a_script_written_for_another_cloud_reports_its_objective_to_the_tuning_job(sagemaker: Backend, tmp_path: Path,
                                                                                     script: str) -> None:
    """An Azure ML script (MLflow) or a Vertex AI one (cloudml-hypertune) sweeps on SageMaker
    unchanged: the entry shim relays its objective to the log lines the tuning job reads."""
    pytest.importorskip("mlflow" if script is MLFLOW_SCRIPT else "hypertune")
    spec = SPEC.replace("max_trials: 4", "max_trials: 2")  # two trials, run at once: each reports, the best is the better
    record = cloud_sweeps.submit(load_spec(write_spec(tmp_path, spec, script), sagemaker.overrides), "sagemaker",
                                 sagemaker.runner).record
    _, status = sagemaker.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    losses = {trial: loss for trial, (_, loss) in logged_trials(list(sagemaker.runner.logs(record.id))).items()}
    assert "trials: 2 completed" in status.message and len(losses) == 2, (status.message, losses)
    best = min(losses, key=losses.get)
    assert f"best {best}: loss = " in status.message, (status.message, losses)
    import boto3

    client = boto3.client("sagemaker", endpoint_url=sagemaker.emulator.endpoint_url, region_name=sagemaker.emulator.region,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    tuning = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=record.native_id.rsplit("/", 1)[-1])
    assert tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(losses[best], rel=1e-5)  # 6 digits, as printed


def test_a_tuning_job_can_be_cancelled(sagemaker: Backend, tmp_path: Path) -> None:
    runner = sagemaker.runner
    path = _spec(tmp_path)
    (path.parent / "train.py").write_text(STOPPABLE)  # trials that run until they are stopped
    record = cloud_sweeps.submit(load_spec(path, sagemaker.overrides), "sagemaker", runner).record
    cancelled = runner.cancel(record.id)
    assert cancelled.state in (JobState.CANCELLING, JobState.CANCELLED)
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.CANCELLED, status


def test_a_backend_without_sweep_jobs_refuses_before_recording(tmp_path: Path) -> None:
    """A backend that renders a tuning request but cannot submit it (its capabilities say so)."""
    import dataclasses

    from cloudtrain.providers.azureml import AzureMLProvider
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    class RenderOnly(AzureMLProvider):
        capabilities = dataclasses.replace(AzureMLProvider.capabilities, sweep_jobs=False)

    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": RenderOnly()})
    loaded = load_spec(_spec(tmp_path), ["azureml.subscription_id=00000000-0000-0000-0000-000000000000",
                                         "azureml.resource_group=rg", "azureml.workspace=ws"])
    assert "max_total_trials: 4" in cloud_sweeps.render(loaded, "azureml", runner).to_text()  # its request can be shown
    with pytest.raises(UnsupportedFeatureError, match="submitting a sweep to azureml is not built yet"):
        cloud_sweeps.submit(loaded, "azureml", runner)
    assert runner.store.list() == []


@pytest.mark.parametrize("fault", ["drop_after", "server_error"])
def test_a_tuning_job_create_without_a_clear_answer_is_found_or_left_uncertain(sagemaker: Backend, tmp_path: Path,
                                                                               fault: str) -> None:
    """A create that took effect but lost its answer is this submission's tuning job; a create that
    failed after botocore's retries (5xx every time) is recorded PENDING, never FAILED."""
    from cloudtrain.errors import SubmissionUncertainError

    runner, emulator = sagemaker.runner, sagemaker.emulator
    loaded = load_spec(_spec(tmp_path), sagemaker.overrides)
    emulator.faults.add(fault, 1 if fault == "drop_after" else 20, "SageMaker.CreateHyperParameterTuningJob")
    if fault == "drop_after":
        record = cloud_sweeps.submit(loaded, "sagemaker", runner).record
        assert record.native_id and runner.store.get(record.id).details["kind"] == "sweep"
        _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
        assert status.state is JobState.SUCCEEDED, status
        return
    with pytest.raises(SubmissionUncertainError, match="cloudtrain sweep SPEC --cloud sagemaker"):
        cloud_sweeps.submit(loaded, "sagemaker", runner)
    pending = runner.store.list()[0]
    assert pending.state is JobState.PENDING and pending.details["kind"] == "sweep"
