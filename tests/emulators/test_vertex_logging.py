"""The Vertex AI emulator's Cloud Logging (``POST /v2/entries:list`` on the JobService endpoint), read
with google-cloud-logging's real client, directly and through
:class:`cloudtrain.providers.vertex_logs.CloudLoggingReader`; and what the emulator validates with
the SDK's own data rather than the provider's."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from cloudtrain.emulators.common import wait_until
from cloudtrain.emulators.vertex import VertexEmulator

pytest.importorskip("google.cloud.aiplatform_v1")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("google.cloud.logging")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VertexEmulator]:
    with VertexEmulator(root=tmp_path_factory.mktemp("vertex-logging"), grace_seconds=3.0, poll_seconds=0.05) as running:
        yield running


def reader(emulator: VertexEmulator, page_size: int = 1000) -> Any:
    from google.auth.credentials import AnonymousCredentials

    from cloudtrain.providers.vertex_logs import CloudLoggingReader

    return CloudLoggingReader(emulator.project, AnonymousCredentials(), emulator.endpoint_url, page_size=page_size)


def create(emulator: VertexEmulator, script: str, *, name: str, replicas: int = 1, machine: str = "n1-standard-4",
           accelerator: dict[str, Any] | None = None) -> Any:
    from google.cloud import aiplatform_v1

    pool = {"machine_spec": {"machine_type": machine, **(accelerator or {})}, "replica_count": 1,
            "container_spec": {"image_uri": "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-3:latest",
                               "command": ["python", "-c", textwrap.dedent(script)]}}
    pools = [pool] + ([{**pool, "replica_count": replicas - 1}] if replicas > 1 else [])
    job = aiplatform_v1.CustomJob(display_name=name, job_spec={
        "worker_pool_specs": pools, "base_output_directory": {"output_uri_prefix": f"gs://{emulator.bucket}/logging/{name}/"}})
    return emulator.job_client().create_custom_job(parent=f"projects/{emulator.project}/locations/{emulator.location}",
                                                   custom_job=job)


def finished(emulator: VertexEmulator, name: str) -> Any:
    client = emulator.job_client()
    return wait_until(lambda: (lambda j: j if j.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
                               else None)(client.get_custom_job(name=name)), timeout=60, what=f"{name} to end")


def job_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def test_entries_are_vertex_shaped_and_read_by_the_real_client(emulator: VertexEmulator) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as cloud_logging

    created = create(emulator, "print('hello from the replica')", name="shape")
    assert finished(emulator, created.name).state.name == "JOB_STATE_SUCCEEDED"
    client = cloud_logging.Client(project=emulator.project, credentials=AnonymousCredentials(), _use_grpc=False,
                                  client_options={"api_endpoint": emulator.endpoint_url})
    entries = list(client.list_entries(filter_=f'resource.type="ml_job" AND resource.labels.job_id="{job_id(created.name)}"',
                                       order_by=cloud_logging.ASCENDING))
    replica = [e for e in entries if e.resource.labels["task_name"] == "workerpool0-0"]
    assert [e.payload for e in replica] == ["hello from the replica"]
    assert replica[0].log_name == f"projects/{emulator.project}/logs/workerpool0-0"
    assert replica[0].resource.type == "ml_job" and replica[0].resource.labels["project_id"] == emulator.project
    assert replica[0].severity == "INFO" and replica[0].insert_id and replica[0].timestamp is not None
    service = [e.payload for e in entries if e.resource.labels["task_name"] == "service"]
    assert service[0] == "Waiting for job to be provisioned." and service[-1] == "Job completed successfully."
    assert [e.timestamp for e in entries] == sorted(e.timestamp for e in entries)
    other_job = f'resource.type="ml_job" AND resource.labels.job_id="1"'
    assert not list(client.list_entries(filter_=other_job))
    newest_first = list(client.list_entries(filter_=f'resource.labels.job_id="{job_id(created.name)}"', order_by=cloud_logging.DESCENDING))
    assert [e.insert_id for e in newest_first] == [e.insert_id for e in reversed(entries)]


def test_reader_returns_each_line_once_in_order_across_pages_and_reads(emulator: VertexEmulator, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f"""
    import pathlib, time
    for i in range(25):
        print("line", i, flush=True)
    deadline = time.monotonic() + 60
    while not pathlib.Path({str(gate)!r}).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(25, 40):
        print("line", i, flush=True)
    """
    created = create(emulator, script, name="paged")
    logs = reader(emulator, page_size=7)  # every read spans several pages
    seen: list[str] = []
    cursor = None

    def read_more() -> bool:
        nonlocal cursor
        lines, cursor = logs.read(job_id(created.name), cursor)
        seen.extend(lines)
        return "line 24" in seen

    wait_until(read_more, timeout=60, what="the first lines")
    gate.write_text("go")
    assert finished(emulator, created.name).state.name == "JOB_STATE_SUCCEEDED"
    lines, cursor = logs.read(job_id(created.name), cursor)
    seen.extend(lines)
    job_lines = [line for line in seen if line.startswith("line ")]
    assert job_lines == [f"line {i}" for i in range(40)]
    assert seen[0] == "Waiting for job to be provisioned." and seen[-1] == "Job completed successfully."
    assert logs.read(job_id(created.name), cursor) == ([], cursor)  # nothing new: nothing again
    everything, _ = logs.read(job_id(created.name), None)
    assert everything == seen


def test_reader_prefixes_replicas_of_a_multi_replica_job(emulator: VertexEmulator) -> None:
    created = create(emulator, "import os; print('rank', os.environ['RANK'])", name="pools", replicas=2)
    assert finished(emulator, created.name).state.name == "JOB_STATE_SUCCEEDED"
    lines, _ = reader(emulator).read(job_id(created.name), None, prefix_tasks=True)
    assert "[workerpool0-0] rank 0" in lines and "[workerpool1-0] rank 1" in lines
    assert "Job completed successfully." in lines


def test_unsupported_filters_are_refused(emulator: VertexEmulator) -> None:
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as cloud_logging

    client = cloud_logging.Client(project=emulator.project, credentials=AnonymousCredentials(), _use_grpc=False,
                                  client_options={"api_endpoint": emulator.endpoint_url})
    with pytest.raises(exceptions.BadRequest):
        list(client.list_entries(filter_='resource.type="ml_job" OR severity>=ERROR'))
    with pytest.raises(exceptions.BadRequest):
        list(client.list_entries(filter_='timestamp>="yesterday"'))


def test_validation_uses_the_sdks_accelerators_and_the_emulators_machine_list(emulator: VertexEmulator) -> None:
    from google.api_core import exceptions

    with pytest.raises(exceptions.BadRequest) as caught:
        create(emulator, "print(1)", name="bad-machine", machine="zz9-standard-4")
    assert "zz9-standard-4" in caught.value.message
    with pytest.raises(exceptions.BadRequest) as caught:
        create(emulator, "print(1)", name="no-type", accelerator={"accelerator_count": 1})
    assert "accelerator_type" in caught.value.message
    created = create(emulator, "print(1)", name="gpu", machine="a3-highgpu-8g",
                     accelerator={"accelerator_type": "NVIDIA_H100_80GB", "accelerator_count": 8})
    assert finished(emulator, created.name).state.name == "JOB_STATE_SUCCEEDED"


def test_the_providers_machine_families_are_known_to_the_emulator() -> None:
    """Every family the provider may render is one Vertex custom training accepts (a wrong provider
    list fails here, not on Google Cloud)."""
    from cloudtrain.emulators.vertex import TRAINING_MACHINE_SERIES
    from cloudtrain.providers.vertex_job import MACHINE_FAMILIES

    families = {series.split("-")[0] for series in TRAINING_MACHINE_SERIES}
    assert set(MACHINE_FAMILIES) <= families, sorted(set(MACHINE_FAMILIES) - families)
