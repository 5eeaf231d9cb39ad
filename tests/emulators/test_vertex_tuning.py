"""Vertex AI hyperparameter tuning jobs in the emulator, from users' unchanged google-cloud-aiplatform
code (``user_code/vertex_tuning/``) run with nothing but the variables the emulator exports added to
a bare environment: ``aiplatform.HyperparameterTuningJob(custom_job=CustomJob.from_local_script(...)).run()``
over gRPC and over REST; each trial is a CustomJob that ran with its own values, the trials' final
measurements are what the trials computed, and the best trial found is the true best. The
JobService's tuning operations are also called directly for what they refuse, list and cancel."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("google.cloud.aiplatform")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("grpc")
pytest.importorskip("trustme")
pytest.importorskip("optuna")

from cloudtrain.emulators.vertex import VertexEmulator  # noqa: E402

USER_CODE = Path(__file__).parent / "user_code" / "vertex_tuning"
SCRIPT_TIMEOUT = 300
PARENT = "projects/p4/locations/us-central1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VertexEmulator]:
    # passthrough off: a host the emulator does not serve is refused, so nothing leaves this machine
    with VertexEmulator(root=tmp_path_factory.mktemp("vertex-tuning"), grace_seconds=3.0, poll_seconds=0.05,
                        proxy_passthrough=False) as running:
        yield running


def run_user_script(emulator: VertexEmulator, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    shutil.copytree(USER_CODE, project)
    (tmp_path / "home").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"), **emulator.environment()}
    return subprocess.run([sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT)


def loss_of(values: dict) -> float:
    """What trial.py computes (with the launcher's --offset 0.25)."""
    return (values["x"] - 3.0) ** 2 + 0.1 * values["layers"] + (0.5 if values["activation"] == "tanh" else 0.0) + 0.25


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_a_users_tuning_job_runs_its_trials_and_finds_the_true_best(emulator: VertexEmulator, tmp_path: Path,
                                                                     transport: str) -> None:
    done = run_user_script(emulator, tmp_path, "run_tuning_job.py", transport)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    name = re.search(r"^job (\S+) JOB_STATE_SUCCEEDED$", done.stdout, re.M)
    assert name, done.stdout + done.stderr[-2000:]
    trials = {m.group(1): (json.loads(m.group(2)), float(m.group(3)))
              for m in re.finditer(r"^trial (\d+) SUCCEEDED (\{.*\}) (\S+)$", done.stdout, re.M)}
    assert sorted(trials) == ["1", "2", "3", "4", "5", "6"], done.stdout
    assert len({values["x"] for values, _ in trials.values()}) == 6  # each trial got values of its own
    for values, value in trials.values():
        assert 0.0 <= values["x"] <= 6.0 and values["layers"] in (1, 2, 3, 4) and values["activation"] in ("relu", "tanh")
        assert value == pytest.approx(loss_of(values))  # the best of its reports (the SDK asks for BEST_MEASUREMENT)
    best_id = min(trials, key=lambda trial: trials[trial][1])
    best = re.search(r"^best (\d+) (\S+) (\{.*\})$", done.stdout, re.M)
    assert best and best.group(1) == best_id, done.stdout
    model = json.loads(best.group(3))  # the best trial's own model, from its own output directory
    assert model["loss"] == pytest.approx(trials[best_id][1]) and model["x"] == trials[best_id][0]["x"]
    # each trial ran as a CustomJob with its values after the package's own args, and logged them
    job = emulator.job_client().get_hyperparameter_tuning_job(name=name.group(1))
    assert job.study_spec.algorithm.name == "ALGORITHM_UNSPECIFIED" and job.parallel_trial_count == 2
    for trial in job.trials:
        custom = emulator.run_of(trial.custom_job).job
        args = list(custom.job_spec.worker_pool_specs[0].python_package_spec.args)
        values = trials[trial.id][0]
        assert args[:2] == ["--offset", "0.25"] and f"--activation={values['activation']}" in args
        assert f"--layers={int(values['layers'])}" in args and f"--x={values['x']!r}" in args and custom.display_name == f"tune-x-trial-{trial.id}"


def wait_for(predicate, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    """Poll a condition (the trials' own progress), failing after a generous deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _client():  # type: ignore[no-untyped-def]
    from google.cloud import aiplatform_v1

    return aiplatform_v1


def _job(**study: object) -> object:
    v1 = _client()
    spec = {"metrics": [{"metric_id": "loss", "goal": "MINIMIZE"}],
            "parameters": [{"parameter_id": "x", "discrete_value_spec": {"values": [1, 2]}}], **study}
    return v1.HyperparameterTuningJob(
        display_name="direct", max_trial_count=2, parallel_trial_count=2, study_spec=spec, labels={"team": "ml"},
        trial_job_spec={"worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                                               "container_spec": {"image_uri": "us-docker.pkg.dev/x/y:z",
                                                                  "command": ["python", "-c", "print('no metric')"]}}]})


def test_the_job_service_refuses_invalid_tuning_jobs(emulator: VertexEmulator) -> None:
    from google.api_core import exceptions

    client = emulator.job_client()
    with pytest.raises(exceptions.BadRequest, match="GRID_SEARCH does not take a double_value_spec"):
        client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=_job(
            algorithm="GRID_SEARCH", parameters=[{"parameter_id": "x", "double_value_spec": {"min_value": 0, "max_value": 1}}]))
    with pytest.raises(exceptions.BadRequest, match="a log scale needs min_value above 0"):
        client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=_job(
            parameters=[{"parameter_id": "x", "double_value_spec": {"min_value": 0, "max_value": 1}, "scale_type": "UNIT_LOG_SCALE"}]))
    with pytest.raises(exceptions.BadRequest, match="exactly one metric"):
        client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=_job(metrics=[]))
    with pytest.raises(exceptions.NotFound):
        client.get_hyperparameter_tuning_job(name=PARENT + "/hyperparameterTuningJobs/404")
    assert list(client.list_hyperparameter_tuning_jobs(parent=PARENT)) == []


def test_trials_without_a_measurement_are_infeasible_and_the_job_fails(emulator: VertexEmulator) -> None:
    client = emulator.job_client()
    created = client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=_job(algorithm="GRID_SEARCH"))
    assert created.state.name == "JOB_STATE_QUEUED"
    emulator.service.tuning.named(created.name).join(timeout=120)
    job = client.get_hyperparameter_tuning_job(name=created.name)
    assert job.state.name == "JOB_STATE_FAILED" and "reported no loss" in job.error.message
    assert sorted(p.value for t in job.trials for p in t.parameters) == [1.0, 2.0]  # the grid, each point once
    assert [t.state.name for t in job.trials] == ["INFEASIBLE", "INFEASIBLE"]
    assert all("no value of the metric loss" in t.infeasible_reason for t in job.trials)
    assert any(f"Trial {t.id}: The trial reported no value of the metric loss" in job.error.message for t in job.trials)  # why
    listed = client.list_hyperparameter_tuning_jobs(request={"parent": PARENT, "filter": 'labels.team="ml"'})
    assert [j.name for j in listed] == [created.name]
    client.delete_hyperparameter_tuning_job(name=created.name).result()
    assert list(client.list_hyperparameter_tuning_jobs(parent=PARENT)) == []


def test_over_grpc_a_cancelled_tuning_job_cancels_its_running_trials(emulator: VertexEmulator) -> None:
    import grpc
    from google.api_core import exceptions
    from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

    v1 = _client()
    host, port = emulator.front.address
    channel = grpc.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(emulator.authority.ca.cert_pem.bytes()),
                                  options=[("grpc.ssl_target_name_override", "us-central1-aiplatform.googleapis.com")])
    client = v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
    try:
        # trials that wait until they are stopped; the file they touch says they started
        waiting = ("import os, pathlib, signal, sys, threading\n"
                   "stop = threading.Event()\n"
                   "signal.signal(signal.SIGTERM, lambda *a: stop.set())\n"
                   "pathlib.Path(os.environ['CLOUD_ML_HP_METRIC_FILE']).with_name('started').touch()\n"
                   "stop.wait()\n")
        job = _job(algorithm="RANDOM_SEARCH",
                   parameters=[{"parameter_id": "lr", "double_value_spec": {"min_value": 1e-4, "max_value": 1e-1},
                                "scale_type": "UNIT_LOG_SCALE"}])
        job.max_trial_count, job.parallel_trial_count = 5, 2
        job.trial_job_spec.worker_pool_specs[0].container_spec.command[:] = ["python", "-c", waiting]
        created = client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=job)
        run = emulator.service.tuning.named(created.name)
        wait_for(lambda: all((run.root / f"trial-{n}" / "started").is_file() for n in (1, 2)), "both trials to start")
        assert [j.name for j in client.list_hyperparameter_tuning_jobs(parent=PARENT)] == [created.name]
        with pytest.raises(exceptions.BadRequest, match="still running"):
            client.delete_hyperparameter_tuning_job(name=created.name)
        client.cancel_hyperparameter_tuning_job(name=created.name)
        run.join(timeout=120)
        got = client.get_hyperparameter_tuning_job(name=created.name)
        assert got.state.name == "JOB_STATE_CANCELLED"
        assert [t.state.name for t in got.trials] == ["INFEASIBLE", "INFEASIBLE"]  # none launched after the cancel
        for trial in got.trials:
            lr = trial.parameters[0].value
            assert 1e-4 <= lr <= 1e-1
            assert emulator.run_of(trial.custom_job).job.state.name == "JOB_STATE_CANCELLED"
        client.delete_hyperparameter_tuning_job(name=created.name).result()
        with pytest.raises(exceptions.NotFound):
            client.get_hyperparameter_tuning_job(name=created.name)
    finally:
        channel.close()


def test_median_automated_stopping_ends_a_trial_worse_than_the_completed_ones(emulator: VertexEmulator) -> None:
    # x=1 reports loss 0 and ends; x=2 reports loss 5, then would go on until stopped
    script = ("import json, os, signal, sys, threading\n"
              "stop = threading.Event()\n"
              "signal.signal(signal.SIGTERM, lambda *a: stop.set())\n"
              "x = float(next(a for a in sys.argv if a.startswith('--x=')).split('=')[1])\n"
              "with open(os.environ['CLOUD_ML_HP_METRIC_FILE'], 'a') as f:\n"
              "    f.write(json.dumps({'loss': 0.0 if x == 1 else 5.0, 'global_step': '1'}) + '\\n')\n"
              "if x != 1:\n"
              "    stop.wait()\n")
    job = _job(algorithm="GRID_SEARCH", median_automated_stopping_spec={"use_elapsed_duration": False})
    job.parallel_trial_count = 1
    job.trial_job_spec.worker_pool_specs[0].container_spec.command[:] = ["python", "-c", script]
    client = emulator.job_client()
    created = client.create_hyperparameter_tuning_job(parent=PARENT, hyperparameter_tuning_job=job)
    emulator.service.tuning.named(created.name).join(timeout=120)  # without early stopping the second trial never ends
    got = client.get_hyperparameter_tuning_job(name=created.name)
    assert got.state.name == "JOB_STATE_SUCCEEDED"
    assert [(t.parameters[0].value, t.state.name, t.final_measurement.metrics[0].value) for t in got.trials] == [
        (1.0, "SUCCEEDED", 0.0), (2.0, "SUCCEEDED", 5.0)]
    assert emulator.run_of(got.trials[1].custom_job).job.state.name == "JOB_STATE_CANCELLED"
    assert emulator.run_of(got.trials[0].custom_job).job.state.name == "JOB_STATE_SUCCEEDED"
