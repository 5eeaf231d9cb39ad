"""The Azure ML emulator driven by the real ``MLClient``: in-process (``responses``) and as an HTTPS
server reached from another process with ``DefaultAzureCredential``.

Where a test must see a job in a given state, the script waits for a file the test creates, so
nothing here depends on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("responses")

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402
from cloudtrain.emulators.common import serve_forever, wait_until  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT = "azureml://registries/azureml/environments/sklearn-1.5/versions/54"
SCRIPT = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    mode = sys.argv[1]
    keys = ("AZUREML_RUN_ID", "AZUREML_EXPERIMENT_NAME", "AZUREML_NODE_COUNT", "MASTER_ADDR", "MASTER_PORT",
            "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "CT_FLAG", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")
    print("env " + json.dumps({k: os.environ.get(k) for k in keys}), flush=True)
    if mode == "gate":
        print("waiting for the gate", flush=True)
        deadline = time.monotonic() + 60
        while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        sys.exit(0)
    data, out = Path(sys.argv[2]), Path(sys.argv[3])
    print("input says " + (data / "hello.txt").read_text().strip(), flush=True)
    if os.environ.get("RANK", "0") == "0":
        (out / "result.txt").write_text("done")
        Path("outputs").mkdir(exist_ok=True)
        Path("outputs/artifact.txt").write_text("artifact")
''')


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLEmulator]:
    with AzureMLEmulator(tmp_path_factory.mktemp("azureml"), grace_seconds=3.0) as value:
        yield value


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text(SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello.txt").write_text("hello from the input\n")
    return tmp_path


def command_job(project: Path, name: str, **overrides: Any) -> Any:
    from azure.ai.ml import Input, Output, PyTorchDistribution, command
    from azure.ai.ml.entities import JobResourceConfiguration

    options: dict[str, Any] = dict(
        name=name, code=str(project / "src"), environment=ENVIRONMENT, experiment_name="emulator-tests",
        command="python job.py run ${{inputs.data}} ${{outputs.result}}",
        inputs={"data": Input(type="uri_folder", path=str(project / "data"))}, outputs={"result": Output(type="uri_folder")},
        environment_variables={"CT_FLAG": "yes"}, instance_count=2, distribution=PyTorchDistribution(process_count_per_instance=1),
        resources=JobResourceConfiguration(instance_count=2, instance_type="Standard_D8as_v5"),
    )
    options.update(overrides)
    return command(**options)


def test_distributed_job_runs_with_azureml_conventions(emulator: AzureMLEmulator, project: Path) -> None:
    ml = emulator.ml_client()
    created = ml.jobs.create_or_update(command_job(project, "emu-dist-1"))
    assert created.name == "emu-dist-1" and created.studio_url
    assert emulator.wait_for_status("emu-dist-1") == "Completed", emulator.service.runs["emu-dist-1"]
    assert emulator.status_history("emu-dist-1") == ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert str(ml.jobs.get("emu-dist-1").status.value if hasattr(ml.jobs.get("emu-dist-1").status, "value") else "") in ("Completed", "")
    prefix = "ExperimentRun/dcid.emu-dist-1/"
    logs = {rank: emulator.blob(f"{prefix}user_logs/std_log_process_{rank}.txt").decode() for rank in (0, 1)}
    for rank, text in logs.items():
        env = json.loads(next(line for line in text.splitlines() if line.startswith("env "))[4:])
        assert env["RANK"] == str(rank) and env["NODE_RANK"] == str(rank) and env["WORLD_SIZE"] == "2"
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] and env["LOCAL_RANK"] == "0"
        assert env["AZUREML_RUN_ID"] == "emu-dist-1" and env["AZUREML_EXPERIMENT_NAME"] == "emulator-tests"
        assert env["AZUREML_NODE_COUNT"] == "2" and env["CT_FLAG"] == "yes"
        # the workspace's MLflow tracking server and the job's own run, as Azure ML gives every job
        assert env["MLFLOW_RUN_ID"] == "emu-dist-1" and env["MLFLOW_EXPERIMENT_NAME"] == "emulator-tests"
        assert env["MLFLOW_TRACKING_URI"] == (
            f"{emulator.tracking.url}/mlflow/v1.0/subscriptions/{emulator.subscription_id}/resourceGroups/"
            f"{emulator.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/{emulator.workspace}")
        assert "input says hello from the input" in text
    assert emulator.blob("azureml/emu-dist-1/result/result.txt") == b"done"
    assert emulator.blob(f"{prefix}outputs/artifact.txt") == b"artifact"
    job = ml.jobs.get("emu-dist-1")
    assert job.outputs["result"].path == "azureml://datastores/workspaceblobstore/paths/azureml/emu-dist-1/result/"
    assert "emu-dist-1" in [j.name for j in ml.jobs.list()]
    assert not emulator.service.unhandled


def test_cancel_a_running_job(emulator: AzureMLEmulator, project: Path, tmp_path: Path) -> None:
    from azure.ai.ml.entities import JobResourceConfiguration

    ml = emulator.ml_client()
    gate = tmp_path / "never"
    ml.jobs.create_or_update(command_job(project, "emu-cancel-1", command=f"python job.py gate {gate}", inputs={}, outputs={},
                                         distribution=None, instance_count=1, resources=JobResourceConfiguration(instance_count=1)))
    wait_until(lambda: b"waiting for the gate" in emulator.blob("ExperimentRun/dcid.emu-cancel-1/user_logs/std_log.txt")
               if emulator.job_status("emu-cancel-1") == "Running" else False, timeout=60, what="the job to start")
    ml.jobs.begin_cancel("emu-cancel-1")
    assert emulator.wait_for_status("emu-cancel-1") == "Canceled"
    assert "CancelRequested" in emulator.status_history("emu-cancel-1")


def test_failed_job_reports_the_error_in_run_history(emulator: AzureMLEmulator, project: Path) -> None:
    from azure.ai.ml.entities import JobResourceConfiguration

    ml = emulator.ml_client()
    ml.jobs.create_or_update(command_job(project, "emu-fail-1", command="python -c 'raise ValueError(\"bad data\")'", inputs={},
                                         outputs={}, distribution=None, instance_count=1, resources=JobResourceConfiguration(instance_count=1)))
    assert emulator.wait_for_status("emu-fail-1") == "Failed"
    details = ml.jobs._runs_operations.get_run_details("emu-fail-1")
    assert "ValueError: bad data" in details.error.error.message
    assert "user_logs/std_log.txt" in details.log_files


def test_dropped_create_response_leaves_one_job(emulator: AzureMLEmulator, project: Path) -> None:
    ml = emulator.ml_client()
    emulator.faults.clear()
    emulator.faults.add("drop_after", 1, "MachineLearningServices.Jobs.CreateOrUpdate").add("throttle", 1, "MachineLearningServices.Jobs.Get")
    before = emulator.job_count()
    ml.jobs.create_or_update(command_job(project, "emu-drop-1"))  # the SDK retries the PUT, which finds the same job
    ml.jobs.get("emu-drop-1")
    assert emulator.faults.count("drop_after") == 1 and emulator.faults.count("throttle") == 1
    assert emulator.job_count() == before + 1
    emulator.wait_for_status("emu-drop-1")


def test_server_mode_from_another_process_with_default_credential(tmp_path: Path, project: Path) -> None:
    client = textwrap.dedent(f'''
        import os, time
        from azure.identity import DefaultAzureCredential
        from azure.ai.ml import MLClient, command
        ml = MLClient(DefaultAzureCredential(), os.environ["CLOUDTRAIN_AZUREML_SUBSCRIPTION_ID"],
                      os.environ["CLOUDTRAIN_AZUREML_RESOURCE_GROUP"], os.environ["CLOUDTRAIN_AZUREML_WORKSPACE"], show_progress=False)
        ml.jobs.create_or_update(command(name="srv-1", code={str(project / "src")!r}, command="python job.py gate {tmp_path}",
                                         environment={ENVIRONMENT!r}))
        deadline = time.monotonic() + 60
        status = lambda: str(getattr(ml.jobs.get("srv-1").status, "value", ml.jobs.get("srv-1").status))
        while status() not in ("Completed", "Failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        print("final", status())
    ''')
    with AzureMLEmulator(tmp_path / "server", server=True, grace_seconds=3.0) as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSI_", "IDENTITY_"))}
        env.update(emulator.environment())
        done = subprocess.run([sys.executable, "-c", client], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "final Completed" in done.stdout, emulator.service.runs["srv-1"]
        assert emulator.status_history("srv-1")[-1] == "Completed"
        assert "waiting for the gate" in emulator.blob("ExperimentRun/dcid.srv-1/user_logs/std_log.txt").decode()


def test_serve_forever_prints_exports_then_a_blank_line(tmp_path: Path) -> None:
    import io
    import threading

    out, stop = io.StringIO(), threading.Event()
    emulator = AzureMLEmulator.from_command_line(root=tmp_path, faults=["throttle=1"])
    thread = threading.Thread(target=serve_forever, args=(emulator,), kwargs=dict(out=out, stop=stop), daemon=True)
    thread.start()
    try:
        text = wait_until(lambda: out.getvalue() if out.getvalue().endswith("\n\n") else None, timeout=30, what="the exports")
    finally:
        stop.set()
        thread.join(timeout=30)
    lines = text.splitlines()
    assert lines[-1] == "" and all(line.startswith("export ") for line in lines[:-1])
    keys = {line.split()[1].split("=")[0] for line in lines[:-1]}
    assert {"AZUREML_DEV_URL_MFE", "REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT", "CLOUDTRAIN_AZUREML_WORKSPACE"} <= keys


def test_provider_without_credentials_says_what_to_configure(emulator: AzureMLEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudtrain.errors import ProviderError
    from cloudtrain.providers.azureml import AzureMLProvider
    from cloudtrain.providers.base import JobRef

    for key in [k for k in os.environ if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PATH", "/nonexistent")  # no `az` or `azd` login to fall back on
    with pytest.raises(ProviderError) as caught:
        AzureMLProvider().status(JobRef("x", "azureml", "x", details=emulator.settings))
    assert caught.value.message.startswith("no usable Azure credentials")
    assert "az login" in (caught.value.hint or "") and "cloudtrain emulator start --cloud azureml" in (caught.value.hint or "")


def test_models_register_from_a_jobs_output_with_versions_as_azure_ml_numbers_them(emulator: AzureMLEmulator) -> None:
    """What Azure ML's samples do after a sweep: ``Model(path="azureml://jobs/<best trial>/outputs/artifacts/paths/...")``."""
    from azure.ai.ml.entities import Model
    from azure.core.exceptions import HttpResponseError

    ml = emulator.ml_client()
    path = "azureml://jobs/emu-best-trial/outputs/artifacts/paths/model/"
    first = ml.models.create_or_update(Model(path=path, name="iris-model", type="custom_model", description="from a run"))
    second = ml.models.create_or_update(Model(path=path + "v2/", name="iris-model", type="mlflow_model"))
    assert (first.version, second.version) == ("1", "2")  # numbered from the model's container, as Azure ML does
    got = ml.models.get("iris-model", version="1")
    assert (got.path, got.type, got.description) == (path, "custom_model", "from a run")
    assert [m.version for m in ml.models.list(name="iris-model")] == ["2", "1"]
    assert "iris-model" in [m.name for m in ml.models.list()]
    assert ml.models.get("iris-model", label="latest").version == "2"
    with pytest.raises(HttpResponseError, match="Asset paths cannot be updated"):
        ml.models.create_or_update(Model(path=path + "elsewhere/", name="iris-model", version="1"))
    with pytest.raises(HttpResponseError, match="not found"):
        ml.models.get("no-such-model", version="1")
