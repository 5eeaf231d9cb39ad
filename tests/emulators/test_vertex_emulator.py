"""The Vertex AI emulator through the real ``aiplatform_v1`` REST client and ``google-cloud-storage``:
the API's answers and errors, the job's environment, mount, outputs and log (Cloud Logging, read back
with google-cloud-logging through :class:`cloudtrain.providers.vertex_logs.CloudLoggingReader`), its
states, the faults, and ``serve_forever``. Jobs here are tiny ``python -c`` commands."""

from __future__ import annotations

import io
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from cloudtrain.emulators.common import serve_forever, wait_until
from cloudtrain.emulators.vertex import VertexEmulator

pytest.importorskip("google.cloud.aiplatform_v1")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("google.cloud.logging")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VertexEmulator]:
    with VertexEmulator(root=tmp_path_factory.mktemp("vertex"), grace_seconds=3.0, poll_seconds=0.05) as running:
        yield running


@pytest.fixture()
def client(emulator: VertexEmulator) -> Any:
    emulator.faults.clear()
    return emulator.job_client()


def parent(emulator: VertexEmulator) -> str:
    return f"projects/{emulator.project}/locations/{emulator.location}"


def custom_job(emulator: VertexEmulator, script: str, *, name: str = "t", replicas: int = 1, timeout: str | None = None,
               labels: dict[str, str] | None = None, spot: bool = False, base: str | None = None) -> Any:
    from google.cloud import aiplatform_v1

    pool = {"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
            "container_spec": {"image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
                               "command": ["python", "-c", textwrap.dedent(script)],
                               "env": [{"name": "GREETING", "value": "hello"},
                                       {"name": "DATA", "value": f"gs://{emulator.bucket}/data/"}]}}
    pools = [pool] + ([{**pool, "replica_count": replicas - 1}] if replicas > 1 else [])
    scheduling: dict[str, Any] = {}
    if timeout:
        scheduling["timeout"] = timeout
    if spot:
        scheduling["strategy"] = "SPOT"
    return aiplatform_v1.CustomJob(display_name=name, labels=labels or {}, job_spec={
        "worker_pool_specs": pools, "scheduling": scheduling,
        "base_output_directory": {"output_uri_prefix": base or f"gs://{emulator.bucket}/out/{name}/"}})


def finished(client: Any, name: str, timeout: float = 60) -> Any:
    return wait_until(lambda: (lambda j: j if j.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED") else None)(
        client.get_custom_job(name=name)), timeout=timeout, what=f"{name} to end")


def read(emulator: VertexEmulator, path: str) -> str:
    return emulator.storage_client().bucket(emulator.bucket).blob(path).download_as_bytes().decode()


def job_log(emulator: VertexEmulator, name: str, prefix_tasks: bool = False) -> str:
    """The job's lines from the emulator's Cloud Logging, through google-cloud-logging's own client."""
    from google.auth.credentials import AnonymousCredentials

    from cloudtrain.providers.vertex_logs import CloudLoggingReader

    reader = CloudLoggingReader(emulator.project, AnonymousCredentials(), emulator.endpoint_url)
    lines, _ = reader.read(name.rsplit("/", 1)[-1], None, prefix_tasks=prefix_tasks)
    return "\n".join(lines)


SEES_VERTEX = """
import json, os, pathlib
mount = pathlib.Path(os.environ["CLOUDTRAIN_GCS_MOUNT"])
spec = json.loads(os.environ["CLUSTER_SPEC"])
print("greeting", os.environ["GREETING"], "task", spec["task"]["type"], spec["task"]["index"], "rank", os.environ["RANK"],
      "of", os.environ["WORLD_SIZE"], "cluster", sorted(spec["cluster"]))
print("data", (mount / os.environ["DATA"][5:] / "rows.csv").read_text().strip())
model = mount / os.environ["AIP_MODEL_DIR"][5:]
model.mkdir(parents=True, exist_ok=True)
(model / f"part-{os.environ['RANK']}.txt").write_text("weights")
print("leak", os.environ.get("CLOUDTRAIN_LEAK_CHECK"))
"""


def test_job_runs_with_vertex_conventions_and_outputs(emulator: VertexEmulator, client: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDTRAIN_LEAK_CHECK", "leaked")  # the emulator's own contract variables are unset for jobs
    emulator.storage_client().bucket(emulator.bucket).blob("data/rows.csv").upload_from_string("a,b\n1,2\n")
    created = client.create_custom_job(parent=parent(emulator), custom_job=custom_job(emulator, SEES_VERTEX, name="conv", replicas=2))
    assert created.state.name == "JOB_STATE_QUEUED" and created.name.startswith(parent(emulator) + "/customJobs/")
    job = finished(client, created.name)
    log = job_log(emulator, created.name, prefix_tasks=True)
    assert job.state.name == "JOB_STATE_SUCCEEDED", log
    assert job.start_time and job.end_time and job.end_time >= job.start_time
    assert "[workerpool0-0] greeting hello task workerpool0 0 rank 0 of 2 cluster ['workerpool0', 'workerpool1']" in log
    assert "[workerpool1-0] greeting hello task workerpool1 0 rank 1 of 2" in log
    assert "[workerpool0-0] data a,b" in log and "leak None" in log and "leaked" not in log
    names = {b.name for b in emulator.storage_client().list_blobs(emulator.bucket, prefix="out/conv/model/")}
    assert names == {"out/conv/model/part-0.txt", "out/conv/model/part-1.txt"}


def test_failed_job_has_the_replicas_error(emulator: VertexEmulator, client: Any) -> None:
    created = client.create_custom_job(parent=parent(emulator), custom_job=custom_job(
        emulator, "raise ValueError('bad learning rate')", name="fails"))
    job = finished(client, created.name)
    assert job.state.name == "JOB_STATE_FAILED"
    assert "workerpool0-0 exited with a non-zero status of 1" in job.error.message
    assert "ValueError: bad learning rate" in job.error.message


def test_a_custom_image_without_a_command_fails_naming_it(emulator: VertexEmulator, client: Any) -> None:
    """Images are not pulled: a container spec with arguments for its image's entrypoint and no
    command fails at set-up, saying so (it once ran ``env`` with the arguments, and succeeded)."""
    job = custom_job(emulator, "", name="no-command")
    spec = job.job_spec.worker_pool_specs[0].container_spec
    spec.image_uri, spec.args = "us-central1-docker.pkg.dev/project/repo/trainer:latest", ["--learning_rate=0.01"]
    del spec.command[:]
    finished_job = finished(client, client.create_custom_job(parent=parent(emulator), custom_job=job).name)
    assert finished_job.state.name == "JOB_STATE_FAILED"
    assert "containerSpec.command is required" in finished_job.error.message
    assert "trainer:latest" in finished_job.error.message


def test_cancel_moves_through_cancelling_to_cancelled(emulator: VertexEmulator, client: Any) -> None:
    script = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    created = client.create_custom_job(parent=parent(emulator), custom_job=custom_job(emulator, script, name="cancel"))
    wait_until(lambda: client.get_custom_job(name=created.name).state.name == "JOB_STATE_RUNNING", timeout=30, what="running")
    client.cancel_custom_job(name=created.name)
    assert client.get_custom_job(name=created.name).state.name in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    assert finished(client, created.name).state.name == "JOB_STATE_CANCELLED"
    from google.api_core import exceptions

    with pytest.raises(exceptions.BadRequest):
        client.cancel_custom_job(name=created.name)


def test_timeout_fails_the_job(emulator: VertexEmulator, client: Any) -> None:
    created = client.create_custom_job(parent=parent(emulator), custom_job=custom_job(
        emulator, "import time\ntime.sleep(60)", name="slow", timeout="1s"))
    job = finished(client, created.name)
    assert job.state.name == "JOB_STATE_FAILED" and "timeout" in job.error.message


def test_api_errors_are_googles(emulator: VertexEmulator, client: Any) -> None:
    from google.api_core import exceptions
    from google.cloud import aiplatform_v1

    with pytest.raises(exceptions.NotFound):
        client.get_custom_job(name=parent(emulator) + "/customJobs/404")
    with pytest.raises(exceptions.BadRequest) as caught:
        client.create_custom_job(parent=parent(emulator), custom_job=aiplatform_v1.CustomJob(display_name="empty"))
    assert "worker_pool_specs" in caught.value.message
    with pytest.raises(exceptions.BadRequest):
        client.create_custom_job(parent=parent(emulator), custom_job=custom_job(emulator, "", name="x", labels={"Bad": "x"}))


def test_list_filters_by_label_and_pages(emulator: VertexEmulator, client: Any) -> None:
    for index in range(3):
        client.create_custom_job(parent=parent(emulator), custom_job=custom_job(
            emulator, "print(1)", name=f"listed-{index}", labels={"batch": "b1", "index": str(index)}))
    listed = client.list_custom_jobs(request={"parent": parent(emulator), "filter": 'labels.batch="b1"', "page_size": 2})
    assert sorted(j.display_name for j in listed) == ["listed-0", "listed-1", "listed-2"]
    one = list(client.list_custom_jobs(request={"parent": parent(emulator), "filter": 'labels.batch="b1" AND labels.index="2"'}))
    assert [j.display_name for j in one] == ["listed-2"]
    assert not list(client.list_custom_jobs(request={"parent": "projects/other/locations/us-central1"}))
    for job in listed:
        finished(client, job.name)


def test_faults_reach_the_client(emulator: VertexEmulator, client: Any) -> None:
    from google.api_core import exceptions

    emulator.faults.add("throttle", 1, "JobService.GetCustomJob").add("5xx", 1, "JobService.GetCustomJob")
    with pytest.raises(exceptions.TooManyRequests):
        client.get_custom_job(name=parent(emulator) + "/customJobs/1")
    with pytest.raises(exceptions.ServiceUnavailable):
        client.get_custom_job(name=parent(emulator) + "/customJobs/1")
    before = len(emulator.jobs())
    emulator.faults.add("drop_after", 1, "JobService.CreateCustomJob")
    with pytest.raises(Exception):  # the create was accepted, its response lost
        client.create_custom_job(parent=parent(emulator), custom_job=custom_job(emulator, "print(1)", name="dropped"))
    assert len(emulator.jobs()) == before + 1
    assert emulator.faults.count("drop_after") == 1
    finished(client, emulator.jobs()[-1].name)


def test_provider_retries_and_never_duplicates(emulator: VertexEmulator, tmp_path: Path) -> None:
    """Through cloudtrain: throttled lookups, a lost create response, then status, logs and model."""
    from cloudtrain.plan import make_plan
    from cloudtrain.providers.vertex import VertexProvider
    from cloudtrain.specfile import build_spec

    (tmp_path / "train.py").write_text(textwrap.dedent("""
        from cloudtrain.runtime import context
        ctx = context()
        (ctx.model_dir / "model.txt").write_text(str(ctx.hp("lr", 0.0)))
        print("inputs", sorted(p.name for p in ctx.inputs["data"].iterdir()))
        ctx.log_metric("loss", 0.5)
    """))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    loaded = build_spec({"name": "tiny", "code": ".", "entrypoint": "train.py", "framework": {"name": "sklearn", "version": "1.3"},
                         "hyperparameters": {"lr": 0.25}, "inputs": {"data": "./data"}, "resources": {"cpus": 2}},
                        source="tiny.yaml", base_dir=tmp_path, environ=emulator.environment())
    from cloudtrain.catalog import load_catalog

    plan = make_plan(loaded.spec, "vertex", catalog=load_catalog(None))  # the bundled machines
    provider = VertexProvider(environ=emulator.environment(), retry_seconds=0.01, poll_seconds=0.05)
    provider.check(plan)
    request = provider.render(plan)
    emulator.faults.clear()
    emulator.faults.add("throttle", 2, "JobService.ListCustomJobs").add("drop_after", 1, "JobService.CreateCustomJob")
    before = len(emulator.jobs())
    ref = provider.submit(plan, request)
    assert provider.submit(plan, request).native_id == ref.native_id  # a resubmission finds the same job
    assert len(emulator.jobs()) == before + 1 and emulator.faults.count("throttle") == 2
    status = wait_until(lambda: (lambda s: s if s.state.is_terminal else None)(provider.status(ref)), timeout=60, what="the job")
    lines = job_log(emulator, ref.native_id).splitlines()  # the job's Cloud Logging entries
    assert status.state.name == "SUCCEEDED", lines
    assert "inputs ['a.csv']" in lines and "cloudtrain-metric name=loss value=0.5" in lines
    assert status.model_uri and read(emulator, status.model_uri.split("/", 3)[3] + "model.txt") == "0.25"


def test_spot_preemption_restarts_from_the_checkpoint(emulator: VertexEmulator, client: Any) -> None:
    script = """
    import os, pathlib, time
    ckpt = pathlib.Path(os.environ["CLOUDTRAIN_GCS_MOUNT"]) / os.environ["AIP_CHECKPOINT_DIR"][5:]
    if (ckpt / "step-1").exists():
        print("resumed from step-1", flush=True)
    else:
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "step-1").write_text("state")
        print("checkpoint written", flush=True)
        time.sleep(60)
    """
    emulator.faults.add("preempt", 1)
    created = client.create_custom_job(parent=parent(emulator), custom_job=custom_job(emulator, script, name="spot", spot=True))
    job = finished(client, created.name)
    log = job_log(emulator, created.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED", log
    assert "preempted" in log and "resumed from step-1" in log
    assert emulator.run_of(created.name).interruptions == 1


def test_serve_forever_prints_exports_then_a_blank_line() -> None:
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(target=serve_forever, args=(VertexEmulator.from_command_line(faults=["throttle=1"]),),
                              kwargs={"out": out, "stop": stop}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: out.getvalue().endswith("\n\n"), timeout=30, what="the exports")
        lines = out.getvalue().splitlines()
        assert lines[-1] == "" and all(line.startswith("export ") for line in lines[:-1])
        exported = dict(line[len("export "):].split("=", 1) for line in lines[:-1])
        assert {"CLOUDTRAIN_VERTEX_API_ENDPOINT", "STORAGE_EMULATOR_HOST", "CLOUDTRAIN_VERTEX_PROJECT",
                "CLOUDTRAIN_VERTEX_LOCATION", "CLOUDTRAIN_VERTEX_STAGING_BUCKET"} <= set(exported)
        from cloudtrain.providers.vertex import VertexProvider
        from cloudtrain.errors import ProviderError
        from cloudtrain.providers.base import JobRef

        provider = VertexProvider(environ=exported, retry_seconds=0.01, retry_deadline=10.0)
        ref = JobRef("x", "vertex", f"projects/{exported['CLOUDTRAIN_VERTEX_PROJECT']}/locations/us-central1/customJobs/1",
                     region="us-central1")
        with pytest.raises(ProviderError) as caught:  # throttled once (retried), then the job is unknown
            provider.status(ref)
        assert caught.value.message.startswith(f"Vertex AI refused to get custom job {ref.native_id}: NotFound")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
