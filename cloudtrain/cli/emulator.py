"""``cloudtrain emulator start``: a local emulator of a cloud, in the foreground."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

#: Emulated cloud -> its emulator class in ``cloudtrain.emulators.<cloud>``.
EMULATED = {"sagemaker": "SageMakerEmulator", "azureml": "AzureMLEmulator", "vertex": "VertexEmulator"}


@click.group("emulator")
def command() -> None:
    """Local emulators of the clouds, for testing pipelines offline."""


@command.command("start")
@click.option("--cloud", "clouds", type=click.Choice(list(EMULATED)), multiple=True,
              help="The cloud to emulate (default: sagemaker). Repeat it to serve several from one shell.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Where jobs run (a temporary directory by default).")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:OPERATION]=COUNT",
              help="Inject faults: throttle, 5xx, drop-after, drop-before, preempt (e.g. --fault throttle=2). Repeatable.")
@click.option("--verbose", is_flag=True, help="Log every HTTP request (quiet by default).")
def start(clouds: tuple[str, ...], port: int, root: str | None, faults: tuple[str, ...], verbose: bool) -> None:
    """Start the emulator of CLOUD on 127.0.0.1 until Ctrl-C (several: --cloud a --cloud b).

    \b
    It prints `export KEY=value` lines, then a blank line: set them in another shell and
    cloudtrain (and the cloud's SDK) talk to the emulator, e.g.
      cloudtrain submit examples/digits-sklearn.yaml --cloud sagemaker --wait

    
    What each serves (and runs: jobs go through the local executor under the cloud's contract):
      sagemaker  SageMaker training jobs (create, describe, stop, list) and tuning jobs whose
                 trials run for real (objective from each trial's logs, the true best reported;
                 Random, Grid, Bayesian via Optuna; Auto early stopping applied); S3, CloudWatch
                 Logs, IAM (SimulatePrincipalPolicy), STS, Secrets Manager (moto;
                 AWS_ENDPOINT_URL), AWS's own hostnames through an HTTPS proxy with a local CA
                 (HTTPS_PROXY, AWS_CA_BUNDLE), SDK defaults naming the emulator's role; the
                 exported credentials are a session of that role, as in a SageMaker notebook
                 (get_execution_role() answers it). Runs script mode and ContainerEntrypoint jobs
                 (the SDK v3 ModelTrainer's drivers) with /opt/ml bound for the job; jobs act as
                 their role. Serves the SDK v2 Estimator flow (upload_data, fit(logs=True),
                 model_data, attach) and v3's ModelTrainer. Not:
                 container images (jobs run with this Python), FastFile/Pipe input modes, the
                 SDK's MPI driver across hosts (ssh).
      azureml    Azure ML workspace, code assets, environments (curated and custom: recorded, not
                 built), command jobs, run history (stream, download, child jobs), blob storage
                 and Key Vault secrets over HTTPS with a local CA (AZUREML_DEV_URL_MFE;
                 HTTPS_PROXY for <account>.blob.core.windows.net and *.vault.azure.net; a
                 managed-identity token route). Jobs wait in Queued until followed (or 5 s). Sweep
                 jobs whose trials run for real as child jobs (Random, Grid; Bayesian samples
                 randomly; bandit, median and truncation policies stop trials; limits.timeout
                 cancels the sweep), the objective read from what each trial logs through
                 MLflow, the true best reported. An MLflow tracking server (every job gets
                 MLFLOW_TRACKING_URI and MLFLOW_RUN_ID: metrics, parameters, tags, autolog,
                 logged models, artifacts in the run's artifact store, the model registry, run
                 and experiment searches, nested runs), which the workspace's
                 mlflow_tracking_uri names, so a user's own session creates and finds runs
                 without azureml-mlflow. Model assets (ml_client.models: create_or_update, get,
                 list; the path recorded as sent; a model registered through MLflow is one too).
                 Not: pipeline, AutoML or Spark jobs, registries, data assets, model downloads,
                 the azureml:// tracking URI scheme (azureml-mlflow).
      vertex     Vertex AI CustomJob (container commands; python_package_spec packages installed
                 offline; /gcs mounted when run as root), CustomTrainingJob (custom training
                 pipelines) and Cloud Logging, over gRPC and REST at their real hostnames (a CONNECT
                 proxy and a local CA: grpc_proxy, HTTPS_PROXY, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH,
                 REQUESTS_CA_BUNDLE), credentials from a metadata server and an OAuth token route
                 (GCE_METADATA_HOST), Cloud Storage with buckets created on first upload
                 (STORAGE_EMULATOR_HOST; gcloud storage and gsutil in the shell and in jobs through
                 CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE, a token file and BOTO_CONFIG), Secret
                 Manager at its real hostname (gcp_secret secrets),
                 HyperparameterTuningJob (each trial a CustomJob with its values as --name=value;
                 random, grid or Optuna TPE for the default algorithm; the objective read from the
                 trial's cloudml-hypertune file; median automated stopping applied); plain REST
                 for cloudtrain (CLOUDTRAIN_VERTEX_API_ENDPOINT). Not: model upload, datasets and
                 AutoML, experiments, decay-curve or convergence stopping, packages' dependencies
                 (not installed), images of custom containers.

    \b
    Each emulator exports an HTTPS proxy and CA bundles (which also trust the system's roots; other
    hosts pass through the proxy unchanged), so two started separately clash in one shell: the last
    exported proxy wins. Start them together instead (--cloud sagemaker --cloud vertex): one proxy
    routes every emulator's hostnames and the CA bundles are merged. Unset what was exported after
    stopping them. --fault applies to each; --root gets a folder per cloud.
    """
    from cloudtrain.emulators.common import serve_forever
    from cloudtrain.emulators.group import EmulatorGroup, EnvironmentClash
    from cloudtrain.errors import UsageError

    clouds = tuple(dict.fromkeys(clouds or ("sagemaker",)))
    if len(clouds) > 1 and port:
        raise UsageError("--port names one emulator's port, and several --cloud are given",
                         "leave --port out (each emulator picks a free port) or start one cloud")
    emulators = [_emulator(cloud, port, root if root is None or len(clouds) == 1 else str(Path(root) / cloud), faults, verbose)
                 for cloud in clouds]
    try:
        serve_forever(emulators[0] if len(emulators) == 1 else EmulatorGroup(emulators))
    except EnvironmentClash as error:
        raise UsageError(str(error), "start these clouds' emulators in separate shells") from None


def _emulator(cloud: str, port: int, root: str | None, faults: tuple[str, ...], verbose: bool) -> Any:
    from cloudtrain.errors import ProviderNotInstalledError, UsageError

    try:
        module = importlib.import_module(f"cloudtrain.emulators.{cloud}")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("cloudtrain.emulators"):
            raise UsageError(f"there is no {cloud} emulator in this installation", "choose one of the installed emulators") from None
        raise ProviderNotInstalledError(f"the {cloud} emulator needs {error.name!r}, which is not installed",
                                        "pip install 'cloudtrain[emulators]'") from None
    try:
        emulator = getattr(module, EMULATED[cloud]).from_command_line(port=port, root=root, faults=list(faults))
    except ValueError as error:
        raise UsageError(f"--fault: {error}", "e.g. --fault throttle=2 or --fault 5xx:SageMaker.CreateTrainingJob=1") from None
    emulator.log_requests = verbose
    return emulator
