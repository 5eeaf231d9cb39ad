"""A user's unchanged azure-ai-ml script (``user_code/azureml/submit_job.py``: ``command()`` with a
local ``Input`` folder, ``jobs.create_or_update``, ``jobs.stream``, ``jobs.download``) runs against
the Azure ML emulator with nothing but the variables the emulator exports added to a bare
environment: the SDK uploads the local folder and the code through the emulator's proxy to
``<account>.blob.core.windows.net``, the training code reads that input, ``stream`` prints its log
and ``download`` brings its model back.

The emulator keeps a new job Queued until the script follows it (reads its run details), as
``cloudtrain emulator start`` does, here with a time limit no run reaches: so ``stream`` sees the
job run whatever the machine's speed, and nothing here waits for time.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("azure.identity")
pytest.importorskip("trustme")

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402

USER_CODE = Path(__file__).parent / "azureml"
CURATED = "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLEmulator]:
    # passthrough off: a host the emulator does not serve is refused, so nothing leaves this machine
    with AzureMLEmulator(tmp_path_factory.mktemp("azureml-server"), server=True, grace_seconds=3.0,
                         proxy_passthrough=False, queue_until_followed=3600.0) as value:
        yield value


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """A copy of the user's project whose local data are random points on a line (so only a run that
    read this upload can produce the expected model)."""
    target = tmp_path / "project"
    shutil.copytree(USER_CODE, target, ignore=shutil.ignore_patterns("downloads", "__pycache__"))
    rng = random.Random()
    slope, intercept = round(rng.uniform(-5, 5), 3), round(rng.uniform(-5, 5), 3)
    xs = sorted(rng.sample(range(-50, 50), 7))
    (target / "local_data" / "points.csv").write_text("x,y\n" + "".join(f"{x},{slope * x + intercept}\n" for x in xs))
    return target, {"slope": slope, "intercept": intercept, "rows": len(xs)}


def user_environment(emulator: AzureMLEmulator, project: Path) -> dict[str, str]:
    """A bare environment (PATH and HOME) plus what ``cloudtrain emulator start --cloud azureml`` exports."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(project))}
    env.update(emulator.environment())
    return env


def run_user_script(emulator: AzureMLEmulator, project: Path, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Run ``submit_job.py`` with only the user's environment; returns the job's name and the
    finished process."""
    before = set(emulator.job_names())
    done = subprocess.run([sys.executable, "submit_job.py", *args], cwd=project, env=user_environment(emulator, project),
                          capture_output=True, text=True, timeout=300)
    created = [name for name in emulator.job_names() if name not in before]
    assert len(created) == 1, (created, done.stderr[-3000:])
    assert emulator.run_details_reads(created[0]), "the job ran before the script followed it"
    return created[0], done


def assert_trained_on_the_upload(emulator: AzureMLEmulator, project: Path, name: str, done: subprocess.CompletedProcess[str],
                                 expected: dict[str, float]) -> None:
    assert done.returncode == 0, done.stderr[-4000:]
    assert emulator.status_history(name)[-1] == "Completed", emulator.service.runs[name]
    # the SDK uploaded the local folder to the datastore and sent its datastore URI, not a local path
    sent = emulator.service.jobs[name]["properties"]["inputs"]["data"]
    assert sent["uri"].startswith("azureml://"), sent
    container, prefix = emulator.service.blob_for_uri(sent["uri"]) or ("", "")
    assert container == emulator.container and prefix.startswith("LocalUpload/"), sent
    assert emulator.blob(prefix.rstrip("/") + "/points.csv") == (project / "local_data" / "points.csv").read_bytes()
    # stream printed the training code's own log line (the fit of this upload's points)
    line = (f"trained on {expected['rows']} rows from points.csv: slope={expected['slope']:.6f} "
            f"intercept={expected['intercept']:.6f}")
    assert f"RunId: {name}" in done.stdout and line in done.stdout, done.stdout[-3000:]
    assert "Execution Summary" in done.stdout
    # download(all=True) brought back the named output and the run's artifacts
    model = json.loads((project / "downloads" / "named-outputs" / "model" / "model.json").read_text())
    assert model["rows"] == expected["rows"]
    assert model["slope"] == pytest.approx(expected["slope"], abs=1e-6)
    assert model["intercept"] == pytest.approx(expected["intercept"], abs=1e-6)
    artifacts = project / "downloads" / "artifacts"
    assert json.loads((artifacts / "outputs" / "metrics.json").read_text()) == {"rows": expected["rows"]}
    assert line in (artifacts / "user_logs" / "std_log.txt").read_text()


def test_custom_environment_local_input_stream_and_download(emulator: AzureMLEmulator,
                                                           project: tuple[Path, dict[str, float]]) -> None:
    folder, expected = project
    name, done = run_user_script(emulator, folder)
    assert_trained_on_the_upload(emulator, folder, name, done, expected)
    # the custom Environment(image=..., conda_file=...) was registered in the workspace as the SDK sent it
    environment_id = emulator.service.jobs[name]["properties"]["environmentId"]
    match = re.search(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/.*/workspaces/([^/]+)/environments/([^/]+)/versions/([^/]+)$",
                      environment_id)
    assert match, environment_id
    registered = emulator.service.workspace_environments(*match.groups()[:3]).find(*match.groups()[3:])
    assert registered is not None
    assert registered["properties"]["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    assert "python=3.11" in registered["properties"]["condaFile"]
    # a second script lists the job's children: a command job has none
    listed = subprocess.run([sys.executable, "list_child_jobs.py", name], cwd=folder, env=user_environment(emulator, folder),
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert re.search(rf"job {name} \(command\) is \S*completed with 0 child jobs", listed.stdout, re.IGNORECASE), listed.stdout
    assert not emulator.service.unhandled


def test_curated_environment_by_name(emulator: AzureMLEmulator, project: tuple[Path, dict[str, float]]) -> None:
    folder, expected = project
    name, done = run_user_script(emulator, folder, CURATED)
    assert_trained_on_the_upload(emulator, folder, name, done, expected)
    assert emulator.service.jobs[name]["properties"]["environmentId"] == f"azureml:{CURATED}"


def test_an_unknown_environment_is_refused_as_in_a_workspace(emulator: AzureMLEmulator,
                                                            project: tuple[Path, dict[str, float]]) -> None:
    folder, _ = project
    before = set(emulator.job_names())
    done = subprocess.run([sys.executable, "submit_job.py", "azureml:no-such-environment:3"], cwd=folder,
                          env=user_environment(emulator, folder), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no-such-environment:3 not found" in done.stderr, done.stderr[-3000:]
    assert set(emulator.job_names()) == before


def test_a_jobs_azure_key_vault_secret_is_read_inside_the_job(emulator: AzureMLEmulator, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The user stores a secret with their own ``SecretClient`` (through the exported environment); a
    cloudtrain job naming it as an ``azure_key_vault`` secret gets its value inside the job, where the
    emulator's compute gives the job its managed identity, as Azure ML compute does."""
    pytest.importorskip("azure.keyvault.secrets")
    import hashlib

    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    from cloudtrain.providers.azureml import AzureMLProvider
    from cloudtrain.runner import Runner
    from cloudtrain.specfile import load_spec
    from cloudtrain.store import JobStore

    for key in [k for k in os.environ if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))]:
        monkeypatch.delenv(key)
    for key, value in emulator.environment().items():
        monkeypatch.setenv(key, value)
    value = f"token-{random.getrandbits(64):x}"
    vault = SecretClient("https://team-vault.vault.azure.net", DefaultAzureCredential())
    assert vault.set_secret("api-token", value).value == value
    assert vault.get_secret("api-token").value == value
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(
        "import hashlib, os\nprint('secret sha256', hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest(), flush=True)\n")
    (tmp_path / "code" / "job.yaml").write_text(
        "name: secret-reader\ncode: .\nentrypoint: train.py\nframework: {name: sklearn}\nresources: {cpus: 2}\n"
        "secrets: {API_TOKEN: {azure_key_vault: 'https://team-vault.vault.azure.net/secrets/api-token'}}\n")
    ml = MLClient(emulator.credential, emulator.subscription_id, emulator.resource_group, emulator.workspace, show_progress=False)
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": AzureMLProvider(client=ml)})
    record = runner.submit(runner.plan(load_spec(tmp_path / "code" / "job.yaml", emulator.overrides), "azureml")).record
    ml.jobs._runs_operations.get_run_details(record.id)  # follow it, so the job leaves the queue
    assert emulator.wait_for_status(record.id, timeout=240) == "Completed", emulator.service.runs[record.id]
    log = emulator.blob(f"ExperimentRun/dcid.{record.id}/user_logs/std_log.txt").decode()
    assert f"secret sha256 {hashlib.sha256(value.encode()).hexdigest()}" in log, log[-3000:]
    assert value not in json.dumps(emulator.service.jobs[record.id])  # the request names the secret, never its value


#: what Azure ML's MLflow samples run in a user's own session (a notebook): the workspace's tracking
#: URI from azure-ai-ml, then runs of their own, nested runs, searches, artifacts and models
SESSION = textwrap.dedent('''
    import json, sys
    import mlflow, mlflow.sklearn
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential
    from mlflow.entities import ViewType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    subscription, group, workspace = sys.argv[1:4]
    ml_client = MLClient(DefaultAzureCredential(), subscription, group, workspace)
    mlflow.set_tracking_uri(ml_client.workspaces.get(ml_client.workspace_name).mlflow_tracking_uri)
    mlflow.set_experiment(experiment_name="heart-classifier-sample")
    X, y = load_iris(return_X_y=True)
    for index, c in enumerate((0.1, 1.0)):
        with mlflow.start_run(run_name=f"run-{index}"):
            mlflow.log_param("C", c)
            model = LogisticRegression(C=c, max_iter=200).fit(X, y)
            mlflow.log_metric("accuracy", model.score(X, y))
            mlflow.log_dict({"C": c}, "settings.json")
            mlflow.sklearn.log_model(model, name="pipeline", serialization_format="cloudpickle")
    with mlflow.start_run(run_name="search") as parent:
        for fold in range(2):
            with mlflow.start_run(run_name=f"fold-{fold}", nested=True):
                mlflow.log_metric("loss", 1.0 / (fold + 1))
    with mlflow.start_run(run_name="abandoned") as abandoned:
        pass
    mlflow.delete_run(abandoned.info.run_id)
    experiment = mlflow.get_experiment_by_name("heart-classifier-sample")
    runs = mlflow.search_runs([experiment.experiment_id], order_by=["metrics.accuracy DESC"], output_format="list")
    best = runs[0]
    folds = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                               output_format="list")
    loaded = mlflow.sklearn.load_model(f"runs:/{best.info.run_id}/pipeline")
    print(json.dumps({
        "names": sorted(r.info.run_name for r in runs), "statuses": sorted({r.info.status for r in runs}),
        "best": [best.info.run_name, best.data.params["C"]], "folds": sorted(r.info.run_name for r in folds),
        "all": sorted(r.info.run_name for r in mlflow.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, output_format="list")),
        "settings": json.load(open(mlflow.artifacts.download_artifacts(run_id=best.info.run_id, artifact_path="settings.json"))),
        "agrees": bool((loaded.predict(X) == LogisticRegression(C=float(best.data.params["C"]), max_iter=200).fit(X, y).predict(X)).all()),
        "run_ids": [r.info.run_id for r in runs]}))
''')


def test_a_users_own_session_creates_runs_nested_runs_and_finds_them(emulator: AzureMLEmulator, tmp_path: Path) -> None:
    """A session written as Azure ML's MLflow notebooks are (sdk/python/using-mlflow: runs-management,
    train-and-log's nested runs): the tracking URI comes from the workspace (the emulator's server,
    read without azureml-mlflow), and its runs are MLflow's own, not jobs."""
    (tmp_path / "session.py").write_text(SESSION)
    env = {**user_environment(emulator, tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    done = subprocess.run([sys.executable, "session.py", emulator.subscription_id, emulator.resource_group, emulator.workspace],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    told = json.loads(done.stdout.strip().splitlines()[-1])
    assert told["names"] == ["fold-0", "fold-1", "run-0", "run-1", "search"]  # the deleted run is not searched
    assert told["all"] == ["abandoned", "fold-0", "fold-1", "run-0", "run-1", "search"]
    assert told["statuses"] == ["FINISHED"] and told["best"] == ["run-1", "1.0"] and told["folds"] == ["fold-0", "fold-1"]
    assert told["settings"] == {"C": 1.0} and told["agrees"]
    best = told["run_ids"][0]
    assert f"ExperimentRun/dcid.{best}/settings.json" in emulator.blob_names(f"ExperimentRun/dcid.{best}/")  # the run's artifact store
    assert best not in emulator.job_names()  # an MLflow run, not a job
