"""Cloud sweeps on Azure ML end to end: `cloudtrain sweep SPEC --cloud azureml` creates a sweep job
in the Azure ML emulator through the real ``MLClient``; the emulator runs each trial as a child
command job, which logs its metric through MLflow; the job store follows the sweep with status,
logs, list, wait and cancel like any job, and a retried submission finds the sweep it created."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("mlflow")

from sweep_helpers import SCRIPT, SPEC, STOPPABLE, emulated_backend, logged_trials, write_spec  # noqa: E402

from cloudtrain.providers.base import JobState  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402
from cloudtrain.sweeps import cloud as cloud_sweeps  # noqa: E402
from cloudtrain.testing import Backend  # noqa: E402

#: each trial imports MLflow (seconds of CPU): 3 at once (the cancel test shows max_parallel holds)
SMALL = SPEC.replace("max_trials: 4", "max_trials: 3").replace("max_parallel: 2", "max_parallel: 3")


@pytest.fixture()
def azureml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    with emulated_backend("azureml", tmp_path, monkeypatch) as value:
        yield value


def _trials(backend: Backend, sweep: str) -> list[str]:
    return [job.name for job in backend.emulator.ml_client().jobs.list(parent_job_name=sweep)]


def test_a_sweep_runs_its_trials_and_reports_the_true_best(azureml: Backend, tmp_path: Path) -> None:
    runner, emulator = azureml.runner, azureml.emulator
    record = cloud_sweeps.submit(load_spec(write_spec(tmp_path, SMALL), azureml.overrides), "azureml", runner).record
    assert record.details["kind"] == "sweep" and record.native_id == record.id
    final, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    logs = list(runner.logs(record.id))
    logged = logged_trials(logs)  # "[<sweep>_N] trial x=... loss=..."
    assert all(loss == pytest.approx((x - 3.0) ** 2) for x, loss in logged.values()), logged
    losses = {trial: loss for trial, (_, loss) in logged.items()}
    trials = _trials(azureml, record.native_id)
    assert sorted(losses) == sorted(trials) == [f"{record.native_id}_{n}" for n in range(3)], logs
    assert len(set(losses.values())) == 3, losses  # each trial ran with its own sampled x, not the spec's x: 0.0
    for trial in trials:  # what each trial logged through MLflow is what it printed, and its tag holds its x
        run = emulator.service.runs[trial]
        assert [m["value"] for m in run["metrics"]["loss"]] == [pytest.approx(losses[trial])]
        x = json.loads(emulator.service.jobs[trial]["properties"]["tags"]["hyperparameters"])["x"]
        assert (x - 3.0) ** 2 == pytest.approx(losses[trial])
    emulator.ml_client().jobs.stream(trials[0])  # a trial's job, as the SDK follows any job
    best = min(losses, key=losses.__getitem__)
    assert re.search(rf"best {best}: loss = \S+ \(x=\S+\)", status.message), (status.message, losses)
    assert "trials: 3 completed, 0 running, 0 failed, 0 cancelled (of 3)" in status.message, status.message
    assert status.model_uri == f"azureml://datastores/workspaceblobstore/paths/azureml/{best}/model/"
    assert final.state is JobState.SUCCEEDED and runner.store.get(record.id).state is JobState.SUCCEEDED
    from cloudtrain.errors import JobNotFoundError

    with pytest.raises(JobNotFoundError, match=f"'{best}' is a trial of the sweep {record.id} on azureml"):
        runner.store.resolve(best)  # `cloudtrain status <a trial's name, as logs shows it>`
    assert record.id in [r.id for r in runner.list(cloud="azureml")]
    listed = [job.name for job in emulator.ml_client().jobs.list()]
    assert record.id in listed and not set(trials) & set(listed)  # trials are listed under their sweep only


def test_grid_sampling_takes_each_value_once_and_a_trial_without_the_metric_is_never_the_best(
        azureml: Backend, tmp_path: Path) -> None:
    script = SCRIPT.replace('context().log_metric("loss", loss)', 'if args.x < 3.0:\n    context().log_metric("loss", loss)')
    spec = SPEC.replace("x: {type: float, min: 0.0, max: 6.0}", "x: {type: categorical, values: [2, 4, 5]}")
    spec = spec.replace("algorithm: random", "algorithm: grid").replace("max_parallel: 2", "max_parallel: 3")
    spec = spec.replace("resources: {cpus: 2}", "resources: {cpus: 2}\ninputs: {table: ./table.csv}")  # a local file input too
    path = write_spec(tmp_path, spec, script)
    (path.parent / "table.csv").write_text("a,b\n")
    assert cloud_sweeps.plan(load_spec(path, azureml.overrides), "azureml", azureml.runner, dry_run=True) is not None
    record = cloud_sweeps.submit(load_spec(path, azureml.overrides), "azureml", azureml.runner).record
    assert azureml.emulator.service.jobs[record.native_id]["properties"]["inputs"]["table"]["jobInputType"] == "uri_file"
    _, status = azureml.runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    trials = _trials(azureml, record.native_id)
    values = sorted(json.loads(azureml.emulator.service.jobs[t]["properties"]["tags"]["hyperparameters"])["x"] for t in trials)
    assert values == [2, 4, 5]  # the grid of 3 values, with max_trials 4: 3 trials
    assert re.search(r"best \S+: loss = 1\.0 \(x=2\)", status.message), status.message  # x=4 is as good but unmeasured


#: the trial script, logging its loss at interval 1, then again once the gate file exists
GATED = "import time\nfrom pathlib import Path\n" + SCRIPT.replace(
    "args = parser.parse_args()", 'parser.add_argument("--gate", required=True)\nargs = parser.parse_args()').replace(
    'context().log_metric("loss", loss)', 'context().log_metric("loss", loss, step=1)\nwhile not Path(args.gate).exists():\n'
    '    time.sleep(0.05)\ncontext().log_metric("loss", loss, step=2)')


def test_the_bandit_policy_stops_a_trial_outside_the_slack_of_the_best(azureml: Backend, tmp_path: Path) -> None:
    """early_stopping: hyperband is Azure ML's BanditPolicy (slack 0.1 at every interval): the trial
    at x=1 (loss 4) is cancelled once the one at x=3 (loss 0) reported the same interval."""
    runner, emulator = azureml.runner, azureml.emulator
    gate = tmp_path / "gate"
    spec = SPEC.replace("hyperparameters: {epochs: 1, x: 0.0}", f"hyperparameters: {{epochs: 1, x: 0.0, gate: '{gate}'}}")
    spec = spec.replace("x: {type: float, min: 0.0, max: 6.0}", "x: {type: categorical, values: [1, 3]}")
    spec = spec.replace("algorithm: random", "algorithm: grid").replace("early_stopping: none", "early_stopping: hyperband")
    record = cloud_sweeps.submit(load_spec(write_spec(tmp_path, spec, GATED), azureml.overrides), "azureml", runner).record
    assert emulator.service.jobs[record.native_id]["properties"]["earlyTermination"]["policyType"] == "Bandit"
    bad, good = f"{record.native_id}_0", f"{record.native_id}_1"  # the grid's order: x=1, then x=3
    emulator.wait_for_status(bad, ["Canceled"], timeout=120)  # both trials wait at the gate: only the policy ends one
    assert emulator.job_status(good) == "Running"
    gate.write_text("go")
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    assert status.state is JobState.SUCCEEDED, status
    assert [m["value"] for m in emulator.service.runs[bad]["metrics"]["loss"]] == [4.0]  # stopped after interval 1
    assert [m["value"] for m in emulator.service.runs[good]["metrics"]["loss"]] == [0.0, 0.0]
    assert f"best {good}: loss = 0.0 (x=3)" in status.message, status.message
    assert "trials: 1 completed, 0 running, 0 failed, 1 cancelled (of 4)" in status.message, status.message  # the grid has 2


def test_a_retried_submission_finds_its_sweep_and_a_cancel_stops_its_trials(azureml: Backend, tmp_path: Path) -> None:
    from cloudtrain.providers.azureml import AzureMLProvider

    runner, emulator = azureml.runner, azureml.emulator
    loaded = load_spec(write_spec(tmp_path, script=STOPPABLE), azureml.overrides)
    plan = cloud_sweeps.plan(loaded, "azureml", runner, dry_run=False)
    provider = runner.provider("azureml")
    assert isinstance(provider, AzureMLProvider)
    request = provider.render_sweep(plan, loaded.spec.sweep)
    emulator.faults.add("drop_after", 1, "MachineLearningServices.Jobs.CreateOrUpdate")  # created, answer lost
    first = provider.submit_sweep(plan, request)
    again = provider.submit_sweep(plan, request)
    assert first.native_id == again.native_id == plan.job_name
    assert [name for name in emulator.job_names() if not emulator.service.runs[name]["parent"]] == [plan.job_name]
    started: set[str] = set()
    for line in provider.logs(first, follow=True):  # until both parallel trials run
        if line.endswith("] training started"):
            started.add(line.split("]")[0])
        if len(started) == 2:
            break
    provider.cancel(first)
    emulator.wait_for_status(plan.job_name, ["Canceled"], timeout=60)
    status = provider.status(first)
    assert status.state is JobState.CANCELLED, status
    trials = _trials(azureml, plan.job_name)
    assert len(trials) == 2  # no trial launched after the cancel
    assert {name: emulator.job_status(name) for name in trials} == {name: "Canceled" for name in trials}
    assert "trials: 0 completed, 0 running, 0 failed, 2 cancelled (of 4)" in status.message, status.message


def test_a_create_without_an_answer_stays_pending_and_is_never_doubled(azureml: Backend, tmp_path: Path) -> None:
    from azure.ai.ml import MLClient

    from cloudtrain.errors import SubmissionUncertainError
    from cloudtrain.providers.azureml import AzureMLProvider
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore

    emulator = azureml.emulator
    client = MLClient(emulator.credential, emulator.subscription_id, emulator.resource_group, emulator.workspace,
                      show_progress=False, retry_total=0)  # no SDK retries: each of cloudtrain's attempts is one PUT
    provider = AzureMLProvider(client=client)
    provider.retry_seconds = 0.01
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": provider})
    emulator.faults.add("server_error", provider.create_attempts, "MachineLearningServices.Jobs.CreateOrUpdate")
    with pytest.raises(SubmissionUncertainError, match="no answer from azureml to the create request of the sweep job") as raised:
        cloud_sweeps.submit(load_spec(write_spec(tmp_path), azureml.overrides), "azureml", runner)
    assert "cloudtrain sweep SPEC --cloud azureml" in (raised.value.hint or "")
    (record,) = runner.store.list()
    assert record.state is JobState.PENDING and record.details["kind"] == "sweep"
    assert emulator.job_names() == [] and emulator.faults.count("server_error") == provider.create_attempts  # each attempt refused


def test_the_cli_submits_and_waits_for_an_azureml_sweep(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from cloudtrain.emulators.azureml import AzureMLEmulator

    path = write_spec(tmp_path, SMALL.replace("max_trials: 3", "max_trials: 2"))
    # as `cloudtrain emulator start` runs it, with jobs queued until followed: longer than any run here,
    # so the trials (which no client follows) run only because the sweep starts them
    with AzureMLEmulator(tmp_path / "emulator", server=True, grace_seconds=5.0, queue_until_followed=600) as emulator:
        env = {**os.environ, **emulator.environment()}  # what `cloudtrain emulator start --cloud azureml` exports
        done = subprocess.run([sys.executable, "-m", "cloudtrain", "sweep", str(path), "--cloud", "azureml", "--wait", "--json"],
                              env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        answer = json.loads(done.stdout)
        assert answer["state"] == "SUCCEEDED" and "trials: 2 completed" in answer["message"], answer
        values = {name: emulator.service.runs[name]["metrics"]["loss"][-1]["value"]
                  for name in emulator.job_names() if emulator.service.runs[name]["parent"]}
        best = min(values, key=values.__getitem__)
        assert len(values) == 2 and f"best {best}: loss = {values[best]}" in answer["message"], (answer["message"], values)
        assert answer["model_uri"].endswith(f"/azureml/{best}/model/")
