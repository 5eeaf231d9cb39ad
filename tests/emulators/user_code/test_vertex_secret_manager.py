"""Secret Manager on the Vertex AI emulator: a user's unchanged script creates a secret with
``google-cloud-secret-manager`` over gRPC (the client's default) and REST, with nothing but the
exported variables in a bare environment; then a cloudtrain Vertex job whose spec names it as a
``gcp_secret`` reads the value inside the job (the entry shim resolves it there). The job prints
only the value's SHA-256; the value is in no request the emulator holds, no log line and no store row.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("google.cloud.aiplatform")
pytest.importorskip("google.cloud.secretmanager")
pytest.importorskip("gcp_storage_emulator")
pytest.importorskip("grpc")
pytest.importorskip("trustme")

from cloudtrain.emulators.vertex import VertexEmulator  # noqa: E402
from cloudtrain.providers.base import JobState  # noqa: E402
from cloudtrain.providers.vertex import VertexProvider  # noqa: E402
from cloudtrain.runner import Runner  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402
from cloudtrain.store import JobStore  # noqa: E402

# Written as for the real cloud: the project from Application Default Credentials, the value from stdin.
USER_SCRIPT = textwrap.dedent('''
    import sys
    import google.auth
    from google.api_core import exceptions
    from google.cloud import secretmanager

    _, project = google.auth.default()
    value = sys.stdin.read().encode()
    client = secretmanager.SecretManagerServiceClient()  # gRPC
    parent = f"projects/{project}"
    secret = client.create_secret(request={"parent": parent, "secret_id": "api-token",
                                           "secret": {"replication": {"automatic": {}}}})
    version = client.add_secret_version(request={"parent": secret.name, "payload": {"data": value}})
    assert client.access_secret_version(name=f"{secret.name}/versions/latest").payload.data == value
    assert client.get_secret(name=secret.name).name == secret.name
    try:
        client.create_secret(request={"parent": parent, "secret_id": "api-token", "secret": {}})
    except exceptions.AlreadyExists:
        print("already exists: refused")
    rest = secretmanager.SecretManagerServiceClient(transport="rest")
    assert rest.access_secret_version(name=version.name).payload.data == value
    assert [s.name for s in rest.list_secrets(parent=parent)] == [secret.name]
    try:
        rest.access_secret_version(name=f"{parent}/secrets/missing/versions/latest")
    except exceptions.NotFound:
        print("missing: not found")
    print(f"created {version.name}")
''')
TRAIN = textwrap.dedent('''
    import hashlib, os
    print("token sha256 " + hashlib.sha256(os.environ["TOKEN"].encode()).hexdigest(), flush=True)
''')
SPEC = """\
name: secret-job
code: .
entrypoint: train.py
framework: {{name: sklearn}}
resources: {{cpus: 2}}
max_runtime: 30m
secrets:
  TOKEN: {{gcp_secret: "{reference}"}}
"""


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[VertexEmulator]:
    with VertexEmulator(root=tmp_path / "vertex-emulator", grace_seconds=3.0, poll_seconds=0.05,
                        proxy_passthrough=False) as running:
        yield running


def test_user_script_creates_a_secret_that_a_cloudtrain_job_reads(emulator: VertexEmulator, tmp_path: Path) -> None:
    value = "tok-" + secrets.token_hex(16)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **emulator.environment()}
    script = tmp_path / "create_secret.py"
    script.write_text(USER_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], input=value, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already exists: refused" in done.stdout and "missing: not found" in done.stdout
    reference = f"projects/{emulator.project}/secrets/api-token/versions/latest"
    assert f"created projects/{emulator.project}/secrets/api-token/versions/1" in done.stdout

    project = tmp_path / "job"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "job.yaml").write_text(SPEC.format(reference=reference))
    provider = VertexProvider(environ=emulator.environment(), retry_seconds=0.05, poll_seconds=0.1)
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"vertex": provider})
    overrides = [f"vertex.project={emulator.project}", f"vertex.location={emulator.location}",
                 f"vertex.staging_bucket=gs://{emulator.bucket}", "resources.memory_gib=8"]
    plan = runner.plan(load_spec(project / "job.yaml", overrides), "vertex")
    request = provider.render(plan).to_text()
    assert reference in request and value not in request
    record = runner.submit(plan).record
    final, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    logs = "\n".join(runner.logs(record.id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert f"token sha256 {hashlib.sha256(value.encode()).hexdigest()}" in logs, logs
    assert value not in logs
    from google.cloud import aiplatform_v1

    for job in emulator.jobs():  # the requests as the emulator holds them
        assert value not in aiplatform_v1.CustomJob.to_json(job)
        assert reference in aiplatform_v1.CustomJob.to_json(job)
    for path in (tmp_path / "jobs.db", *tmp_path.glob("jobs.db*")):
        assert value.encode() not in path.read_bytes(), path
    for path in (tmp_path / "vertex-emulator").rglob("*"):  # the job's files, its staged code, the emulator's storage
        assert not path.is_file() or value.encode() not in path.read_bytes(), path
