"""Users' unchanged google-cloud-aiplatform scripts (``user_code/vertex/``) run against the Vertex AI
emulator with nothing but the variables it exports added to a bare environment (PATH and a fresh
HOME, so no gcloud credentials of the machine are found):

- ``run_job.py``: ``aiplatform.init`` + ``CustomJob.from_local_script(...).run()``; the SDK finds
  credentials and the project through the emulator's metadata server, stages ``task.py`` as a package
  in a bucket that did not exist, reaches the JobService over gRPC by its real hostname through the
  emulator's proxy and TLS certificate, and the emulator installs and runs the package; the training
  code saves its model with google-cloud-storage and the script reads it back.
- ``run_custom_job.py``: ``CustomJob(worker_pool_specs=[python_package_spec])`` with a package the
  user built and uploaded; the trainer reads its data and writes its model through ``/gcs/...``.
- ``run_training_job.py``: ``CustomTrainingJob(...).run()``, a training pipeline (PipelineService)
  whose backing custom job runs the staged script.
- ``run_job_rest.py``: the same over ``api_transport="rest"`` (HTTPS through the proxy), then the
  job's log read with google-cloud-logging over gRPC at ``logging.googleapis.com``.

The gRPC JobService is also exercised directly (a TLS channel to its port) for its answers, errors
and faults, and the PipelineService over REST for what it refuses. Nothing here waits for time: the scripts end when their job does.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("google.cloud.aiplatform")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("grpc")
pytest.importorskip("trustme")

from cloudtrain.emulators.vertex import VertexEmulator  # noqa: E402

USER_CODE = Path(__file__).parent / "vertex"
SCRIPT_TIMEOUT = 300


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VertexEmulator]:
    # passthrough off: a host the emulator does not serve is refused, so nothing leaves this machine
    with VertexEmulator(root=tmp_path_factory.mktemp("vertex-user-code"), grace_seconds=3.0, poll_seconds=0.05,
                        proxy_passthrough=False) as running:
        yield running


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(USER_CODE, target, ignore=shutil.ignore_patterns("dist", "*.egg-info", "__pycache__"))
    return target


def run_user_script(emulator: VertexEmulator, project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **emulator.environment()}
    return subprocess.run([sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT)


def job_named(emulator: VertexEmulator, resource_name: str) -> Any:
    return next(job for job in emulator.jobs() if job.name == resource_name)


def job_log(emulator: VertexEmulator, resource_name: str) -> str:
    """The job's lines from the emulator's Cloud Logging, through google-cloud-logging's own client."""
    from google.auth.credentials import AnonymousCredentials

    from cloudtrain.providers.vertex_logs import CloudLoggingReader

    reader = CloudLoggingReader(resource_name.split("/")[1], AnonymousCredentials(), emulator.endpoint_url)
    lines, _ = reader.read(resource_name.rsplit("/", 1)[-1], None)
    return "\n".join(lines)


def test_from_local_script_runs_the_staged_package_and_the_model_is_read_back(emulator: VertexEmulator, project: Path) -> None:
    done = run_user_script(emulator, project, "run_job.py")
    assert done.returncode == 0, done.stderr[-4000:]
    resource = re.search(r"^job (\S+) JOB_STATE_SUCCEEDED$", done.stdout, re.M)
    assert resource, done.stdout + done.stderr[-2000:]
    name = resource.group(1)
    assert name.startswith("projects/my-project/locations/us-central1/customJobs/")
    # what the SDK sent: a python package staged in the user's bucket, run on the prebuilt image
    job = job_named(emulator, name)
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.python_package_spec.executor_image_uri == "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest"
    assert pool.python_package_spec.python_module == "aiplatform_custom_trainer_script.task"
    assert list(pool.python_package_spec.args) == ["--epochs", "2"]
    (package,) = pool.python_package_spec.package_uris
    assert package.startswith("gs://my-staging/") and package.endswith(".tar.gz")
    # the training code ran: its log line and the metrics it saved, read back by the user's script, agree
    trained = re.search(r"trained for 2 epochs: accuracy (\d\.\d{3})", job_log(emulator, name))
    assert trained, job_log(emulator, name)
    assert f"metrics epochs=2 accuracy={trained.group(1)}" in done.stdout
    assert "model SGDClassifier classes 10" in done.stdout
    output = job.job_spec.base_output_directory.output_uri_prefix
    bucket, _, prefix = output[len("gs://"):].partition("/")
    names = {blob.name for blob in emulator.storage_client().list_blobs(bucket, prefix=prefix.rstrip("/") + "/model/")}
    assert names == {f"{prefix.rstrip('/')}/model/model.pkl", f"{prefix.rstrip('/')}/model/metrics.txt"}


def test_custom_job_from_worker_pool_specs_reads_and_writes_gcs_paths(emulator: VertexEmulator, project: Path) -> None:
    from cloudtrain.emulators.vertex_mount import unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(f"/gcs cannot be mounted for replicas here: {unavailable_reason()}")
    values = [round(random.uniform(-100, 100), 2) for _ in range(random.randint(3, 9))]
    (project / "data" / "values.csv").write_text("value\n" + "".join(f"{v}\n" for v in values))
    done = run_user_script(emulator, project, "run_custom_job.py")
    assert done.returncode == 0, done.stderr[-4000:]
    model = json.loads(re.search(r"^model (.+)$", done.stdout, re.M).group(1))
    assert model["rows"] == len(values)
    assert model["mean"] == pytest.approx(2 * sum(values) / len(values))
    name = re.search(r"^job (\S+) JOB_STATE_SUCCEEDED$", done.stdout, re.M).group(1)
    assert job_named(emulator, name).job_spec.base_output_directory.output_uri_prefix == "gs://my-output/custom-run"


def test_custom_training_job_runs_through_a_training_pipeline(emulator: VertexEmulator, project: Path) -> None:
    done = run_user_script(emulator, project, "run_training_job.py")
    assert done.returncode == 0, done.stderr[-4000:]
    name = re.search(r"^pipeline (\S+) PIPELINE_STATE_SUCCEEDED$", done.stdout, re.M)
    assert name, done.stdout + done.stderr[-2000:]
    backing = emulator.service.pipelines.backing[name.group(1)]
    job = job_named(emulator, backing)
    assert job.state.name == "JOB_STATE_SUCCEEDED" and job.display_name == "training-custom-job"
    assert job.job_spec.worker_pool_specs[0].python_package_spec.package_uris[0].startswith("gs://my-pipelines/")
    trained = re.search(r"trained for 3 epochs: accuracy (\d\.\d{3})", job_log(emulator, backing))
    assert trained, job_log(emulator, backing)
    assert f"metrics epochs=3 accuracy={trained.group(1)}" in done.stdout
    assert "model SGDClassifier classes 10" in done.stdout


def test_training_pipelines_over_rest_and_what_they_refuse(emulator: VertexEmulator) -> None:
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    from cloudtrain.emulators.vertex_pipelines import CUSTOM_TASK

    client = aiplatform_v1.PipelineServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                                 client_options=ClientOptions(api_endpoint=emulator.endpoint_url))
    parent = "projects/p3/locations/us-central1"
    inputs = {"worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                                     "container_spec": {"image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
                                                        "command": ["python", "-c", "print('pipeline ran')"]}}],
              "base_output_directory": {"output_uri_prefix": "gs://cloudtrain-staging/out/rest-pipeline"}}
    created = client.create_training_pipeline(parent=parent, training_pipeline=aiplatform_v1.TrainingPipeline(
        display_name="rest", training_task_definition=CUSTOM_TASK, training_task_inputs=inputs))
    assert created.state.name == "PIPELINE_STATE_QUEUED"
    backing = created.training_task_metadata["backingCustomJob"]
    assert backing.startswith(parent + "/customJobs/")
    emulator.run_of(backing).join(timeout=120)
    got = client.get_training_pipeline(name=created.name)
    assert got.state.name == "PIPELINE_STATE_SUCCEEDED" and got.end_time
    assert [p.name for p in client.list_training_pipelines(parent=parent)] == [created.name]
    assert "pipeline ran" in job_log(emulator, backing)
    with pytest.raises(exceptions.BadRequest, match="model_to_upload is not emulated"):
        client.create_training_pipeline(parent=parent, training_pipeline=aiplatform_v1.TrainingPipeline(
            display_name="m", training_task_definition=CUSTOM_TASK, training_task_inputs=inputs,
            model_to_upload={"display_name": "m", "container_spec": {"image_uri": "us-docker.pkg.dev/x/y:z"}}))
    with pytest.raises(exceptions.BadRequest, match="is not emulated"):
        client.create_training_pipeline(parent=parent, training_pipeline=aiplatform_v1.TrainingPipeline(
            display_name="automl", training_task_definition="gs://google-cloud-aiplatform/schema/trainingjob/definition/"
            "automl_tabular_1.0.0.yaml", training_task_inputs={}))
    with pytest.raises(exceptions.NotFound):
        client.get_training_pipeline(name=parent + "/trainingPipelines/404")


def test_rest_transport_and_cloud_logging_reach_the_emulator_by_their_real_hostnames(emulator: VertexEmulator,
                                                                                     project: Path) -> None:
    done = run_user_script(emulator, project, "run_job_rest.py")
    assert done.returncode == 0, done.stderr[-4000:]
    name = re.search(r"^job (\S+) JOB_STATE_SUCCEEDED$", done.stdout, re.M)
    assert name, done.stdout + done.stderr[-2000:]
    assert job_named(emulator, name.group(1)).display_name == "rest"
    # the lines google-cloud-logging read are the job's own, as the emulator's log holds them
    trained = re.search(r"^log workerpool0-0 (trained for 4 epochs: accuracy \d\.\d{3})$", done.stdout, re.M)
    assert trained, done.stdout
    assert trained.group(1) in job_log(emulator, name.group(1))
    assert re.search(r"^log service Job completed successfully\.$", done.stdout, re.M)


def test_application_default_credentials_come_from_the_metadata_server(emulator: VertexEmulator, project: Path) -> None:
    probe = ("import google.auth, google.auth.transport.requests as r\n"
             "credentials, project = google.auth.default()\n"
             "credentials.refresh(r.Request())\n"
             "print(type(credentials).__module__, project, credentials.service_account_email, bool(credentials.token))\n"
             "from google.cloud import aiplatform\n"
             "print(aiplatform.initializer.global_config.project)\n")  # aiplatform.init() with no project finds it
    done = run_user_script(emulator, project, "-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["google.auth.compute_engine.credentials", emulator.project,
                                   f"emulator@{emulator.project}.iam.gserviceaccount.com", "True", emulator.project]


# -- the gRPC JobService, through a TLS channel straight to the emulator's TLS address ---------------------------------

@pytest.fixture()
def grpc_client(emulator: VertexEmulator) -> Iterator[Any]:
    import grpc
    from google.cloud import aiplatform_v1
    from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

    emulator.faults.clear()
    host, port = emulator.front.address
    channel = grpc.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(emulator.authority.ca.cert_pem.bytes()),
                                  options=[("grpc.ssl_target_name_override", "us-central1-aiplatform.googleapis.com")])
    yield aiplatform_v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
    channel.close()


def sleeper_job() -> Any:
    from google.cloud import aiplatform_v1

    return aiplatform_v1.CustomJob(display_name="grpc-sleeper", labels={"suite": "grpc"}, job_spec={
        "worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                               "container_spec": {"image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
                                                  "command": ["python", "-c", "import time; time.sleep(600)"]}}],
        "base_output_directory": {"output_uri_prefix": "gs://cloudtrain-staging/out/grpc/"}})


def test_grpc_create_get_list_cancel(emulator: VertexEmulator, grpc_client: Any) -> None:
    from cloudtrain.emulators.common import wait_until

    parent = "projects/p1/locations/us-central1"
    created = grpc_client.create_custom_job(parent=parent, custom_job=sleeper_job())
    assert created.state.name == "JOB_STATE_QUEUED" and created.name.startswith(parent + "/customJobs/")
    assert grpc_client.get_custom_job(name=created.name).display_name == "grpc-sleeper"
    listed = list(grpc_client.list_custom_jobs(request={"parent": parent, "filter": 'labels.suite="grpc"'}))
    assert [job.name for job in listed] == [created.name]
    wait_until(lambda: grpc_client.get_custom_job(name=created.name).state.name == "JOB_STATE_RUNNING", timeout=60,
               what="the job to run")
    grpc_client.cancel_custom_job(name=created.name)
    final = wait_until(lambda: (lambda j: j if j.state.name == "JOB_STATE_CANCELLED" else None)(
        grpc_client.get_custom_job(name=created.name)), timeout=60, what="the cancel")
    assert final.end_time


def test_grpc_errors_and_faults_are_google_api_exceptions(emulator: VertexEmulator, grpc_client: Any) -> None:
    from google.api_core import exceptions
    from google.cloud import aiplatform_v1

    parent = "projects/p2/locations/us-central1"
    with pytest.raises(exceptions.NotFound, match="does not exist"):
        grpc_client.get_custom_job(name=parent + "/customJobs/404")
    with pytest.raises(exceptions.InvalidArgument, match="worker_pool_specs is required"):
        grpc_client.create_custom_job(parent=parent, custom_job=aiplatform_v1.CustomJob(display_name="empty"))
    emulator.faults.add("throttle", 1, "JobService.ListCustomJobs")
    with pytest.raises(exceptions.ResourceExhausted):
        grpc_client.list_custom_jobs(parent=parent, retry=None)
    assert list(grpc_client.list_custom_jobs(parent=parent)) == []
    assert emulator.faults.count("throttle") == 1
    emulator.faults.add("drop_after", 1, "JobService.CreateCustomJob")  # the create takes effect, its answer is lost
    with pytest.raises(exceptions.ServiceUnavailable):
        grpc_client.create_custom_job(parent=parent, custom_job=sleeper_job(), retry=None)
    (lost,) = list(grpc_client.list_custom_jobs(parent=parent))
    assert lost.display_name == "grpc-sleeper"
    grpc_client.cancel_custom_job(name=lost.name)


def package_job(uri: str, module: str = "probe.main") -> Any:
    from google.cloud import aiplatform_v1

    return aiplatform_v1.CustomJob(display_name="package", job_spec={
        "worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                               "python_package_spec": {"executor_image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest",
                                                       "package_uris": [uri], "python_module": module, "args": ["--x", "1"]}}],
        "base_output_directory": {"output_uri_prefix": "gs://cloudtrain-staging/out/package/"}})


def test_python_package_spec_installs_the_package_and_names_what_it_cannot(emulator: VertexEmulator, grpc_client: Any,
                                                                          tmp_path: Path) -> None:
    from cloudtrain.emulators.common import wait_until

    source = tmp_path / "probe-source"
    (source / "probe").mkdir(parents=True)
    (source / "probe" / "__init__.py").write_text("")
    marker = f"probe ran {random.randrange(10**9)}"
    (source / "probe" / "main.py").write_text(f"import sys\nprint({marker!r}, sys.argv[1:])\n")
    (source / "setup.py").write_text("from setuptools import setup\nsetup(name='probe', version='1.0', packages=['probe'], "
                                     "install_requires=['no-such-dependency-for-cloudtrain>=1', 'scikit-learn'])\n")
    subprocess.run([sys.executable, "setup.py", "--quiet", "sdist", "--dist-dir", str(tmp_path)], cwd=source, check=True,
                   capture_output=True)
    emulator.storage_client().bucket(emulator.bucket).blob("packages/probe-1.0.tar.gz").upload_from_filename(
        str(tmp_path / "probe-1.0.tar.gz"))
    parent = "projects/p4/locations/us-central1"

    def finished(name: str) -> Any:
        return wait_until(lambda: (lambda j: j if j.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") else None)(
            grpc_client.get_custom_job(name=name)), timeout=120, what=f"{name} to end")

    ran = finished(grpc_client.create_custom_job(parent=parent, custom_job=package_job(
        f"gs://{emulator.bucket}/packages/probe-1.0.tar.gz")).name)
    log = job_log(emulator, ran.name)
    assert ran.state.name == "JOB_STATE_SUCCEEDED", log
    assert f"{marker} ['--x', '1']" in log
    lacks = re.search(r"this environment lacks: (.*)$", log, re.M)
    assert lacks and lacks.group(1) == "no-such-dependency-for-cloudtrain>=1", log  # scikit-learn is importable here
    missing = finished(grpc_client.create_custom_job(parent=parent, custom_job=package_job(
        f"gs://{emulator.bucket}/packages/missing-1.0.tar.gz")).name)
    assert missing.state.name == "JOB_STATE_FAILED"
    assert f"cannot read gs://{emulator.bucket}/packages/missing-1.0.tar.gz" in missing.error.message
    import tarfile  # a package whose build fails: the job's error names the cause, its log has pip's whole account

    broken = tmp_path / "broken-1.0"
    broken.mkdir()
    (broken / "setup.py").write_text("raise RuntimeError('cannot build: the probe needs a compiler')\n")
    (broken / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    with tarfile.open(tmp_path / "broken-1.0.tar.gz", "w:gz") as archive:
        archive.add(broken, arcname="broken-1.0")
    emulator.storage_client().bucket(emulator.bucket).blob("packages/broken-1.0.tar.gz").upload_from_filename(
        str(tmp_path / "broken-1.0.tar.gz"))
    failed = finished(grpc_client.create_custom_job(parent=parent, custom_job=package_job(
        f"gs://{emulator.bucket}/packages/broken-1.0.tar.gz", module="broken.main")).name)
    assert failed.state.name == "JOB_STATE_FAILED"
    assert "pip could not install" in failed.error.message and "cannot build: the probe needs a compiler" in failed.error.message
    assert "pip: " in job_log(emulator, failed.name), job_log(emulator, failed.name)


def test_a_container_command_reads_what_it_names_by_its_gcs_path(emulator: VertexEmulator, grpc_client: Any) -> None:
    from google.cloud import aiplatform_v1

    from cloudtrain.emulators.common import wait_until
    from cloudtrain.emulators.vertex_mount import unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(f"/gcs cannot be mounted for replicas here: {unavailable_reason()}")
    token = str(random.randrange(10**12))
    emulator.storage_client().bucket("fuse-data").blob("in/token.txt").upload_from_string(token)  # created on first upload
    job = aiplatform_v1.CustomJob(display_name="fuse", job_spec={
        "worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1, "container_spec": {
            "image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
            "command": ["sh", "-c", "echo read $(cat /gcs/fuse-data/in/token.txt)"]}}]})
    created = grpc_client.create_custom_job(parent="projects/p5/locations/us-central1", custom_job=job)
    done = wait_until(lambda: (lambda j: j if j.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") else None)(
        grpc_client.get_custom_job(name=created.name)), timeout=120, what="the job to end")
    assert done.state.name == "JOB_STATE_SUCCEEDED", job_log(emulator, created.name)
    assert f"read {token}" in job_log(emulator, created.name)


def test_gcloud_storage_and_gsutil_reach_the_emulator_from_the_shell_and_from_a_job(emulator: VertexEmulator, grpc_client: Any,
                                                                                   tmp_path: Path) -> None:
    """The samples' notebook cells (``gcloud storage buckets create``, ``gsutil cp``, ``gcloud storage
    ls``) with only the exported variables, and a trainer that copies its data with
    ``gcloud storage cp`` as the Vertex samples' trainers do."""
    from google.cloud import aiplatform_v1

    from cloudtrain.emulators.common import wait_until

    if shutil.which("gcloud") is None:
        pytest.skip("the gcloud CLI is not installed here")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **emulator.environment()}
    token = str(random.randrange(10**12))
    (tmp_path / "data.csv").write_text(f"token\n{token}\n")

    def shell(*command: str) -> str:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr[-3000:])
        return done.stdout

    shell("gcloud", "storage", "buckets", "create", "--location=us-central1", "gs://sample-bucket")
    shell("gsutil", "cp", str(tmp_path / "data.csv"), "gs://sample-bucket/iris/data.csv")  # as gcloud storage, through the boto file
    assert shell("gcloud", "storage", "ls", "gs://sample-bucket/iris/").split() == ["gs://sample-bucket/iris/data.csv"]
    assert emulator.storage_client().bucket("sample-bucket").blob("iris/data.csv").download_as_text() == f"token\n{token}\n"
    job = aiplatform_v1.CustomJob(display_name="gcloud-trainer", job_spec={
        "worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1, "container_spec": {
            "image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
            "command": ["sh", "-c", "gcloud storage cp gs://sample-bucket/iris/data.csv data.csv && echo read $(tail -1 data.csv) "
                                    "&& gcloud storage cp data.csv gs://sample-bucket/out/copy.csv"]}}]})
    created = grpc_client.create_custom_job(parent="projects/p6/locations/us-central1", custom_job=job)
    done = wait_until(lambda: (lambda j: j if j.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") else None)(
        grpc_client.get_custom_job(name=created.name)), timeout=180, what="the job to end")
    assert done.state.name == "JOB_STATE_SUCCEEDED", job_log(emulator, created.name)
    assert f"read {token}" in job_log(emulator, created.name)
    assert emulator.storage_client().bucket("sample-bucket").blob("out/copy.csv").download_as_text().endswith(f"{token}\n")
    shell("gcloud", "storage", "rm", "--recursive", "gs://sample-bucket")  # a notebook's clean-up cell
    assert emulator.storage_client().lookup_bucket("sample-bucket") is None
    assert not (home / ".config" / "gcloud" / "credentials.db").exists()  # no login was needed


def test_the_metadata_server_answers_as_google_documents(emulator: VertexEmulator) -> None:
    import requests

    root = f"http://{emulator.metadata.address}/computeMetadata/v1/"
    flavor = {"Metadata-Flavor": "Google"}
    assert requests.get(root + "project/project-id", timeout=10).status_code == 403  # the header is required
    answer = requests.get(root + "project/project-id", headers=flavor, timeout=10)
    assert answer.text == emulator.project and answer.headers["Metadata-Flavor"] == "Google"
    token = requests.get(root + "instance/service-accounts/default/token", headers=flavor, timeout=10).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0 and token["access_token"]
    info = requests.get(root + "instance/service-accounts/default/", params={"recursive": "true"}, headers=flavor,
                        timeout=10).json()
    assert info["email"] == f"emulator@{emulator.project}.iam.gserviceaccount.com"
    assert requests.get(root + "instance/service-accounts/default/identity", headers=flavor, timeout=10).status_code == 404


def test_the_exported_roots_bundle_still_trusts_the_public_roots(emulator: VertexEmulator) -> None:
    import certifi

    environment = emulator.environment()
    assert environment["REQUESTS_CA_BUNDLE"] == environment["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"]
    bundle = Path(environment["REQUESTS_CA_BUNDLE"]).read_text()
    assert bundle.count("BEGIN CERTIFICATE") == Path(certifi.where()).read_text().count("BEGIN CERTIFICATE") + 1
    assert emulator.authority.ca.cert_pem.bytes().decode() in bundle


def test_credentials_the_user_already_has_are_refreshed_by_the_emulator(emulator: VertexEmulator, project: Path) -> None:
    """gcloud's application default credentials (a refresh token) and a service-account key file
    get their access token from the emulator's OAuth endpoint, through the proxy: offline."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    gcloud = project.parent / "home" / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    (gcloud / "application_default_credentials.json").write_text(json.dumps({
        "type": "authorized_user", "client_id": "id.apps.googleusercontent.com", "client_secret": "secret",
        "refresh_token": "1//refresh", "quota_project_id": "my-project"}))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key_file = project.parent / "key.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": "key-project", "private_key_id": "1", "private_key": key,
        "client_email": "trainer@key-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    probe = ("import google.auth, google.auth.transport.requests as r\n"
             "credentials, project = google.auth.default(scopes=['https://www.googleapis.com/auth/cloud-platform'])\n"
             "credentials.refresh(r.Request())\n"
             "print(type(credentials).__module__, project, credentials.token)\n")
    user = run_user_script(emulator, project, "-c", probe)
    assert user.returncode == 0, user.stderr[-3000:]
    # (the project comes from gcloud's configuration: the exported CLOUDSDK_CORE_PROJECT, the emulator's)
    assert user.stdout.split() == ["google.oauth2.credentials", emulator.project, emulator.metadata.service.token]
    home = project.parent / "home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **emulator.environment(),
           "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    keyed = subprocess.run([sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True,
                           timeout=SCRIPT_TIMEOUT)
    assert keyed.returncode == 0, keyed.stderr[-3000:]
    assert keyed.stdout.split() == ["google.oauth2.service_account", "key-project", emulator.metadata.service.token]
