"""Cloud sweeps on Vertex AI end to end: `cloudtrain sweep SPEC --cloud vertex` submits a
HyperparameterTuningJob to the Vertex emulator, which runs each trial as a CustomJob; the job store
follows it with status, logs, list, wait and cancel like any job, and a retried submission finds the
tuning job it created."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("google.cloud.aiplatform")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("optuna")

from cloudtrain.providers.base import JobState  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402
from cloudtrain.sweeps import cloud as cloud_sweeps  # noqa: E402
from cloudtrain.testing import Backend  # noqa: E402

from sweep_helpers import MLFLOW_SCRIPT, SCRIPT, SPEC, STOPPABLE, emulated_backend, logged_trials, write_spec  # noqa: E402


@pytest.fixture()
def vertex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with emulated_backend("vertex", tmp_path, monkeypatch) as value:
        yield value


def _spec(tmp_path: Path, spec: str = SPEC, script: str = SCRIPT) -> Path:
    return write_spec(tmp_path, spec, script)


def test_a_tuning_job_runs_its_trials_and_reports_the_true_best(vertex: Backend, tmp_path: Path) -> None:
    runner = vertex.runner
    loaded = load_spec(_spec(tmp_path), vertex.overrides)
    record = cloud_sweeps.submit(loaded, "vertex", runner).record
    assert record.details["kind"] == "sweep" and "/hyperparameterTuningJobs/" in record.native_id
    assert vertex.emulator.job_client().get_hyperparameter_tuning_job(name=record.native_id).display_name == record.id
    final, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    logs = list(runner.logs(record.id))
    losses = {trial: loss for trial, (_, loss) in logged_trials(logs).items()}  # "[trial N] trial x=... loss=..."
    assert sorted(losses) == ["1", "2", "3", "4"], logs  # every trial ran and its log is shown under its number
    assert len(set(losses.values())) == 4, losses  # each trial ran with its own tuned x, not the spec's x: 0.0
    best = min(losses, key=losses.__getitem__)
    assert re.search(rf"best trial {best}: loss = \S+ \(x=\S+\)", status.message), (status.message, losses)
    assert "trials: 4 succeeded, 0 running, 0 infeasible" in status.message, status.message
    # the tuning job's own record of its trials agrees with what ran: values, measurements, CustomJobs
    job = vertex.emulator.job_client().get_hyperparameter_tuning_job(name=record.native_id)
    for trial in job.trials:
        x = dict((p.parameter_id, p.value) for p in trial.parameters)["x"]
        assert trial.final_measurement.metrics[0].value == pytest.approx((x - 3.0) ** 2)
        assert trial.final_measurement.metrics[0].value == pytest.approx(losses[trial.id])
        assert trial.custom_job in [j.name for j in vertex.emulator.jobs()]
    best_job = next(t for t in job.trials if t.id == best).custom_job
    output = next(j for j in vertex.emulator.jobs() if j.name == best_job).job_spec.base_output_directory.output_uri_prefix
    assert output.endswith(f"/{best}") and status.model_uri == output + "/model/"
    assert final.state is JobState.SUCCEEDED and runner.store.get(record.id).state is JobState.SUCCEEDED
    assert record.id in [r.id for r in runner.list(cloud="vertex")]


def test_a_trial_that_reports_no_objective_is_infeasible_and_never_the_best(vertex: Backend, tmp_path: Path) -> None:
    script = SCRIPT.replace('context().log_metric("loss", loss)',
                            'if args.x < 3.0:\n    context().log_metric("loss", loss)')
    spec = SPEC.replace("x: {type: float, min: 0.0, max: 6.0}", "x: {type: categorical, values: [1, 2, 4, 5]}")
    spec = spec.replace("algorithm: random", "algorithm: grid")
    record = cloud_sweeps.submit(load_spec(_spec(tmp_path, spec, script), vertex.overrides), "vertex", vertex.runner).record
    _, status = vertex.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    assert "trials: 2 succeeded, 0 running, 2 infeasible" in status.message, status.message
    assert re.search(r"best trial \d+: loss = 1\.0 \(x=2\)", status.message), status.message  # x=4 is as good but unmeasured


def test_an_mlflow_script_reports_its_objective_to_the_tuning_job(vertex: Backend, tmp_path: Path) -> None:
    """An Azure ML script (its objective through MLflow) sweeps on Vertex unchanged: the entry shim
    relays the objective to the cloudml-hypertune file the tuning job reads."""
    pytest.importorskip("mlflow")
    spec = SPEC.replace("max_trials: 4", "max_trials: 2")
    record = cloud_sweeps.submit(load_spec(_spec(tmp_path, spec, MLFLOW_SCRIPT), vertex.overrides), "vertex", vertex.runner).record
    _, status = vertex.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    assert "trials: 2 succeeded, 0 running, 0 infeasible" in status.message, status.message
    job = vertex.emulator.job_client().get_hyperparameter_tuning_job(name=record.native_id)
    for trial in job.trials:
        x = dict((p.parameter_id, p.value) for p in trial.parameters)["x"]
        assert trial.final_measurement.metrics[0].value == pytest.approx((x - 3.0) ** 2)


def test_a_retried_submission_finds_its_tuning_job(vertex: Backend, tmp_path: Path) -> None:
    from cloudtrain.providers.vertex import VertexProvider

    loaded = load_spec(_spec(tmp_path), vertex.overrides)
    plan = cloud_sweeps.plan(loaded, "vertex", vertex.runner, dry_run=False)
    provider = vertex.runner.provider("vertex")
    assert isinstance(provider, VertexProvider)
    request = provider.render_sweep(plan, loaded.spec.sweep)
    vertex.emulator.faults.add("drop_after", 1, "JobService.CreateHyperparameterTuningJob")  # created, answer lost
    first = provider.submit_sweep(plan, request)
    again = provider.submit_sweep(plan, request)
    assert first.native_id == again.native_id
    assert len(vertex.emulator.job_client().list_hyperparameter_tuning_jobs(
        parent=f"projects/{vertex.emulator.project}/locations/{vertex.emulator.location}").hyperparameter_tuning_jobs) == 1
    provider.cancel(first)


def test_a_tuning_job_can_be_cancelled(vertex: Backend, tmp_path: Path) -> None:
    runner = vertex.runner
    path = _spec(tmp_path, script=STOPPABLE)  # trials that run until they are stopped
    record = runner.store.get(cloud_sweeps.submit(load_spec(path, vertex.overrides), "vertex", runner).record.id)
    started = set()
    for line in runner.logs(record.id, follow=True):  # until both parallel trials run
        if line.endswith("] training started"):
            started.add(line.split("]")[0])
        if len(started) == 2:
            break
    cancelled = runner.cancel(record.id)
    assert cancelled.state in (JobState.CANCELLING, JobState.CANCELLED)
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.CANCELLED, status
    job = vertex.emulator.job_client().get_hyperparameter_tuning_job(name=record.native_id)
    assert len(job.trials) == 2  # no trial launched after the cancel
    assert [t.state.name for t in job.trials] == ["INFEASIBLE", "INFEASIBLE"]
    assert {j.name: j.state.name for j in vertex.emulator.jobs()} == {t.custom_job: "JOB_STATE_CANCELLED" for t in job.trials}


def test_the_cli_submits_and_waits_for_a_vertex_sweep(vertex: Backend, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    path = _spec(tmp_path)
    env = {**os.environ, **vertex.emulator.environment()}  # what `cloudtrain emulator start --cloud vertex` exports
    done = subprocess.run([sys.executable, "-m", "cloudtrain", "sweep", str(path), "--cloud", "vertex", "--wait", "--json",
                           "--set", "resources.memory_gib=8"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["state"] == "SUCCEEDED" and "trials: 4 succeeded" in answer["message"]
    job = vertex.emulator.job_client().get_hyperparameter_tuning_job(name=answer["native_id"])
    values = {t.id: t.final_measurement.metrics[0].value for t in job.trials}
    best = min(values, key=values.__getitem__)
    assert f"best trial {best}: loss = {values[best]}" in answer["message"], (answer["message"], values)
    assert answer["model_uri"].endswith(f"/{best}/model/")


def test_a_create_without_an_answer_stays_pending_and_is_never_doubled(vertex: Backend, tmp_path: Path) -> None:
    from cloudtrain.errors import SubmissionUncertainError

    vertex.emulator.faults.add("server_error", 4, "JobService.CreateHyperparameterTuningJob")  # every attempt: 503
    loaded = load_spec(_spec(tmp_path), vertex.overrides)
    with pytest.raises(SubmissionUncertainError, match="may have been accepted"):
        cloud_sweeps.submit(loaded, "vertex", vertex.runner)
    (record,) = vertex.runner.store.list()
    assert record.state is JobState.PENDING and record.details["kind"] == "sweep"
    assert vertex.emulator.service is not None and vertex.emulator.service.tuning.runs == {}  # nothing was created
