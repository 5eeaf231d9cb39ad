"""The Azure ML emulator's MLflow tracking server, driven by the real MLflow client: what a job's
``mlflow`` calls (``autolog``, ``log_model`` with a registered model, ``log_artifact``, parameters,
tags) lands on the job's run, its artifacts in the run's artifact store, and a user reads them back
with ``MlflowClient``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("responses")
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402
from cloudtrain.emulators.azureml_mlflow import MlflowTracking, experiment_id, run_environment  # noqa: E402

#: what a training script of Azure ML's samples does: autolog, then its own metric, a file and a model
SCRIPT = textwrap.dedent('''
    import json, sys
    import mlflow, mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC
    mlflow.autolog()
    X, y = load_iris(return_X_y=True)
    with mlflow.start_run():  # MLFLOW_RUN_ID: the job's own run
        model = SVC(C=0.7, kernel="linear").fit(X, y)
        mlflow.log_metric("holdout", 0.5, step=1)
        with mlflow.start_run(run_name="fold-0", nested=True):  # a child of the job's run
            mlflow.log_metric("fold_score", 0.8)
        mlflow.log_dict({"classes": 3}, "notes/summary.json")
        info = mlflow.sklearn.log_model(model, name="svc", registered_model_name="iris-svc")  # and registered
    outside = mlflow.sklearn.log_model(model, name="outside-a-run")  # in the job's experiment (MLFLOW_EXPERIMENT_ID)
    agrees = [bool((mlflow.sklearn.load_model(uri).predict(X) == model.predict(X)).all())
              for uri in (info.model_uri, "models:/iris-svc/1")]
    print(json.dumps({"model_id": info.model_id, "model_uri": info.model_uri, "agrees": agrees, "outside": outside.model_id}))
''')


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLEmulator]:
    with AzureMLEmulator(tmp_path_factory.mktemp("azureml-mlflow")) as value:
        yield value


@pytest.fixture(autouse=True)
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server error fails the test at once instead of after MLflow's minutes of retries."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _environment(emulator: AzureMLEmulator, name: str, experiment: str = "iris") -> dict[str, str]:
    """Record a job ``name`` and answer what its processes get for MLflow."""
    workspace = (emulator.subscription_id, emulator.resource_group, emulator.workspace)
    emulator.service.record_job(workspace, name, {"properties": {"experimentName": experiment}})
    return run_environment(emulator.tracking.url, emulator.service.resource_id(*workspace), name, experiment)


def _job(emulator: AzureMLEmulator, name: str, experiment: str = "iris") -> str:
    return _environment(emulator, name, experiment)["MLFLOW_TRACKING_URI"]


def test_an_autologging_script_records_on_its_jobs_run_and_its_model_loads_back(emulator: AzureMLEmulator,
                                                                                tmp_path: Path) -> None:
    job = _environment(emulator, "autolog-job")
    uri = job["MLFLOW_TRACKING_URI"]
    (tmp_path / "train.py").write_text(SCRIPT)
    env = {**os.environ, **job, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Encountered unexpected error during sklearn autologging" not in done.stderr, done.stderr[-3000:]
    told = json.loads(done.stdout.strip().splitlines()[-1])
    assert told["agrees"] == [True, True] and told["model_uri"] == f"models:/{told['model_id']}"
    metrics = emulator.service.runs["autolog-job"]["metrics"]  # run history, where a sweep reads its primary metric
    assert metrics["holdout"] == [{"value": 0.5, "step": 1, "timestamp": metrics["holdout"][0]["timestamp"]}]
    assert metrics["training_accuracy_score"][-1]["value"] > 0.9  # autolog's own training metrics
    run = MlflowClient(uri).get_run("autolog-job")
    assert run.info.experiment_id == experiment_id("iris") and run.info.artifact_uri == "mlflow-artifacts:/ExperimentRun/dcid.autolog-job"
    assert run.data.params["C"] == "0.7" and run.data.params["kernel"] == "linear"  # autolog's parameters
    assert run.data.tags["estimator_name"] == "SVC" and "fold_score" not in run.data.metrics
    (fold,) = MlflowClient(uri).search_runs([experiment_id("iris")], "tags.mlflow.parentRunId = 'autolog-job'")
    assert (fold.info.run_name, fold.info.status, fold.data.metrics) == ("fold-0", "FINISHED", {"fold_score": 0.8})
    assert run.data.metrics["holdout"] == 0.5
    outputs = [output.model_id for output in run.outputs.model_outputs]
    assert told["model_id"] in outputs and len(outputs) == 2, outputs  # the script's model and autolog's
    assert run.inputs.dataset_inputs, "autolog logs the training set as the run's input"
    # the files: in the run's artifact store, beside its logs, where jobs.download finds them
    names = emulator.blob_names("ExperimentRun/dcid.autolog-job/")
    assert "ExperimentRun/dcid.autolog-job/notes/summary.json" in names
    assert f"ExperimentRun/dcid.autolog-job/models/{told['model_id']}/artifacts/MLmodel" in names
    assert json.loads(emulator.blob("ExperimentRun/dcid.autolog-job/notes/summary.json")) == {"classes": 3}
    client = MlflowClient(uri)
    assert client.get_logged_model(told["outside"]).experiment_id == experiment_id("iris")
    model = client.get_logged_model(told["model_id"])
    assert model.status.to_proto() == 2 and model.source_run_id == "autolog-job" and model.name == "svc"  # READY
    assert told["model_id"] in [m.model_id for m in client.search_logged_models([experiment_id("iris")])]
    assert [m.model_id for m in client.search_logged_models([experiment_id("iris")], filter_string="name = 'svc'")] == [told["model_id"]]
    # the registry: a version of the logged model, found by MLflow's own filter and by an alias
    (version,) = client.search_model_versions("name = 'iris-svc'")
    assert (version.version, version.source, version.status) == ("1", told["model_uri"], "READY")
    assert emulator.tracking.app.registry.models["iris-svc"]["versions"]["1"]["model_id"] == told["model_id"]  # MLflow's client drops it
    assert client.get_registered_model("iris-svc").latest_versions[0].version == "1"
    assert client.search_model_versions("name = 'other'") == [] and [m.name for m in client.search_registered_models()] == ["iris-svc"]
    client.set_registered_model_alias("iris-svc", "champion", "1")
    assert client.get_model_version_by_alias("iris-svc", "champion").aliases == ["champion"]
    assert client.get_model_version_download_uri("iris-svc", "1") == model.artifact_location
    asset = emulator.ml_client().models.get("iris-svc", version="1")  # as on Azure ML: a model asset too
    assert (asset.type, asset.path) == ("mlflow_model", "azureml://datastores/workspaceartifactstore/paths/"
                                                        f"ExperimentRun/dcid.autolog-job/models/{told['model_id']}/artifacts/")
    assert [f.path for f in client.list_artifacts("autolog-job", "notes")] == ["notes/summary.json"]
    fetched = client.download_artifacts("autolog-job", "notes/summary.json", str(tmp_path / "got"))
    assert json.loads(Path(fetched).read_text()) == {"classes": 3}


def test_parameters_tags_history_and_experiments_as_mlflow_keeps_them(emulator: AzureMLEmulator) -> None:
    uri = _job(emulator, "plain-job", experiment="digits")
    assert uri == emulator.mlflow_tracking_uri and uri in emulator.notes()[0]  # what `emulator start` prints for users
    client = MlflowClient(uri)
    client.log_batch("plain-job", metrics=[Metric("loss", 0.9, 1, 0), Metric("loss", 0.4, 2, 1)],
                     params=[Param("lr", "0.1")], tags=[RunTag("stage", "try")])
    client.log_param("plain-job", "lr", "0.1")  # the same value again is fine
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_param("plain-job", "lr", "0.2")
    with pytest.raises(MlflowException, match="Changing param values"):  # a refused batch logs nothing of itself
        client.log_batch("plain-job", metrics=[Metric("loss", 9.0, 3, 2)], params=[Param("lr", "0.3")])
    client.delete_tag("plain-job", "stage")
    # an exact repeat is one value, and the latest is the highest step's (autolog logs step 0 again at the end)
    client.log_batch("plain-job", metrics=[Metric("loss", 0.9, 1, 0)])
    run = client.get_run("plain-job")
    assert run.data.params == {"lr": "0.1"} and "stage" not in run.data.tags and run.data.metrics == {"loss": 0.4}
    assert [(m.value, m.step) for m in client.get_metric_history("plain-job", "loss")] == [(0.9, 0), (0.4, 1)]
    assert [m["value"] for m in emulator.service.runs["plain-job"]["metrics"]["loss"]] == [0.9, 0.4]  # what a sweep's policy counts
    assert run.info.status == "RUNNING" and run.info.run_name == "plain-job"
    assert client.get_experiment_by_name("digits").experiment_id == experiment_id("digits") == run.info.experiment_id
    assert client.get_experiment(experiment_id("digits")).name == "digits"
    assert client.get_experiment_by_name("no-such-experiment") is None
    created = client.create_experiment("made-by-mlflow")
    assert created == experiment_id("made-by-mlflow") and client.get_experiment(created).name == "made-by-mlflow"
    # one registry: a version registered through MLflow is numbered after the workspace's asset versions
    from azure.ai.ml.entities import Model

    emulator.ml_client().models.create_or_update(Model(name="numbered", path="azureml://jobs/plain-job/outputs/artifacts/paths/m/"))
    client.create_registered_model("numbered")
    version = client.create_model_version("numbered", "mlflow-artifacts:/ExperimentRun/dcid.plain-job/m2", run_id="plain-job")
    assert version.version == "2" and [m.version for m in emulator.ml_client().models.list(name="numbered")] == ["2", "1"]
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.set_registered_model_alias("numbered", "best", "7")
    client.set_registered_model_alias("numbered", "best", "2")
    assert client.get_model_version_by_alias("numbered", "best").version == "2"
    client.delete_registered_model_alias("numbered", "best")  # MLflow sends a DELETE's fields as its body
    with pytest.raises(MlflowException, match="alias best not found"):
        client.get_model_version_by_alias("numbered", "best")
    with pytest.raises(MlflowException, match="Changing param values"):  # two values of one key in one batch
        client.log_batch("plain-job", params=[Param("depth", "3"), Param("depth", "4")])
    # searches, with MLflow's own filters, order and pages: what a user runs to compare a sweep's trials
    MlflowClient(_job(emulator, "plain-job-2", experiment="digits")).log_batch("plain-job-2", metrics=[Metric("loss", 0.7, 1, 0)])
    digits = [experiment_id("digits")]
    assert [r.info.run_id for r in client.search_runs(digits, order_by=["metrics.loss DESC"])] == ["plain-job-2", "plain-job"]
    assert [r.info.run_id for r in client.search_runs(digits, "metrics.loss < 0.5 and params.lr = '0.1'")] == ["plain-job"]
    first = client.search_runs(digits, order_by=["metrics.loss ASC"], max_results=1)
    assert [r.info.run_id for r in first] == ["plain-job"] and first.token
    assert [r.info.run_id for r in client.search_runs(digits, order_by=["metrics.loss ASC"], max_results=1, page_token=first.token)] == ["plain-job-2"]
    assert [e.name for e in client.search_experiments(filter_string="name = 'digits'")] == ["digits"]
    with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE"):
        client.search_runs(digits, "metrics.loss <")
    client.set_terminated("plain-job")  # MLflow's end_run: the job, not MLflow, ends the run
    assert emulator.service.runs["plain-job"]["status"] == "NotStarted"


def test_what_the_server_refuses_is_named(emulator: AzureMLEmulator) -> None:
    client = MlflowClient(_job(emulator, "refusing-job"))
    with pytest.raises(MlflowException, match="Could not find experiment with ID nope"):
        client.create_run("nope")
    with pytest.raises(MlflowException, match="is a job's run"):
        client.delete_run("refusing-job")
    plain = client.create_run("0")  # what mlflow.start_run() sends with no experiment set: the workspace's Default
    assert plain.info.experiment_id == experiment_id("Default") and plain.info.status == "RUNNING"
    client.delete_run(plain.info.run_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        client.log_metric(plain.info.run_id, "loss", 1.0)
    client.restore_run(plain.info.run_id)
    client.log_metric(plain.info.run_id, "loss", 1.0)
    with pytest.raises(MlflowException, match="not found"):
        client.get_run("no-such-run")
    client.create_logged_model(experiment_id("iris"), name="to-search")  # a model to match against, whichever test ran first
    for bad in ("name = svc", "name === 'svc'"):  # refused, not retried as a server error
        with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE"):
            client.search_logged_models([experiment_id("iris")], filter_string=bad)
    with pytest.raises(MlflowException, match="No Experiment with id=nope"):
        client.create_logged_model("nope")
    from werkzeug.test import Client

    base = "/mlflow/v1.0" + emulator.service.resource_id(emulator.subscription_id, emulator.resource_group, emulator.workspace)
    raw = Client(MlflowTracking(emulator.service))
    answer = raw.put(f"{base}/api/2.0/mlflow-artifacts/artifacts/ExperimentRun/../../../escape.txt", data=b"x")
    assert answer.status_code == 400 and "not an artifact path" in answer.get_json()["message"]
    for outside in ("ExperimentRun", "ExperimentRun/dcid.refusing-job", "azureml/some-job/output/file"):  # others' blobs
        answer = raw.delete(f"{base}/api/2.0/mlflow-artifacts/artifacts/{outside}")
        assert answer.status_code == 403 and "not inside a run's" in answer.get_json()["message"], outside
    # odd input is a 400 that MLflow reports at once, never a 500 it would retry for minutes
    batch = f"{base}/api/2.0/mlflow/runs/log-batch"
    for body in ({"run_id": "refusing-job", "params": ["not-a-pair"]}, {"run_id": "refusing-job", "metrics": [{"key": "m", "value": 1, "step": "x"}]},
                 {"run_id": ["a", "list"]}):
        answer = raw.post(batch, json=body)
        assert answer.status_code == 400 and answer.get_json()["error_code"] == "INVALID_PARAMETER_VALUE", (body, answer.get_json())
    answer = raw.post(batch, data=b"{not json", content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error_code"] == "MALFORMED_REQUEST"
    assert raw.get(f"{base}/api/2.0/mlflow/traces/search").status_code == 404
    with pytest.raises(MlflowException, match="RESOURCE_ALREADY_EXISTS"):
        client.create_registered_model("twice") and client.create_registered_model("twice")

