"""The Vertex emulator's Cloud Storage: operation names, faults on uploads as the real
``google-cloud-storage`` client meets them, and a completed resumable session answering again."""

from __future__ import annotations

import io
import os
from typing import Any, Iterator

import pytest

from cloudtrain.emulators.common import INTERNAL_HEADER, Faults
from cloudtrain.emulators.vertex_storage import StorageServer, operation_of

BUCKET = "staging"


@pytest.fixture
def server() -> Iterator[StorageServer]:
    storage = StorageServer("127.0.0.1", 0, BUCKET).start()
    try:
        yield storage
    finally:
        storage.stop()


def _client(server: StorageServer, **headers: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": server.url},
                          extra_headers=headers)


def _upload(client: Any, name: str, data: bytes, retry: Any = None) -> None:
    client.bucket(BUCKET).blob(name).upload_from_file(io.BytesIO(data), size=len(data), rewind=False, retry=retry,
                                                      timeout=(5, 30))


def _stored(server: StorageServer, name: str) -> bytes | None:
    try:
        return bytes(server.storage.get_file(BUCKET, name, show_error=False))
    except Exception:  # noqa: BLE001 - the library's NotFound
        return None


@pytest.mark.parametrize(("method", "path", "operation"), [
    ("POST", "/upload/storage/v1/b/bk/o?uploadType=multipart", "Storage.Objects.Insert"),
    ("PUT", "/upload/storage/v1/b/bk/o?uploadType=resumable&upload_id=u1", "Storage.Objects.Insert"),
    ("POST", "/b/bk/o?uploadType=media", "Storage.Objects.Insert"),
    ("GET", "/download/storage/v1/b/bk/o/a%2Fb.txt?alt=media", "Storage.Objects.Get"),
    ("GET", "/storage/v1/b/bk/o/a%2Fb.txt", "Storage.Objects.Get"),
    ("GET", "/storage/v1/b/bk/o?prefix=a/", "Storage.Objects.List"),
    ("DELETE", "/storage/v1/b/bk/o/a", "Storage.Objects.Delete"),
    ("GET", "/storage/v1/b/bk", "Storage.Buckets.Get"),
    ("GET", "/bk/a.txt", "Storage.Objects.Get"),  # the public URL form
    ("PUT", "/", None),
])
def test_operations_are_named_after_the_json_api(method: str, path: str, operation: str | None) -> None:
    assert operation_of(method, path) == operation


@pytest.mark.parametrize(("kind", "error", "stored"), [
    ("throttle", "TooManyRequests", False), ("server_error", "ServiceUnavailable", False),
    ("drop_before", "ConnectionError", False), ("drop_after", "ConnectionError", True),
])
def test_a_fault_fails_one_upload_as_the_client_sees_it(server: StorageServer, kind: str, error: str, stored: bool) -> None:
    server.faults.add(kind, 1, "Storage.Objects.Insert")
    client = _client(server)
    with pytest.raises(Exception) as caught:
        _upload(client, "code/bundle.tar.gz", b"bundle bytes")
    assert type(caught.value).__name__ == error, caught.value
    assert _stored(server, "code/bundle.tar.gz") == (b"bundle bytes" if stored else None)
    assert server.faults.injected == [(kind, "Storage.Objects.Insert")]
    _upload(client, "code/bundle.tar.gz", b"bundle bytes")  # the rule is used up: the next call passes
    assert _stored(server, "code/bundle.tar.gz") == b"bundle bytes"


@pytest.mark.parametrize("kind", ["throttle", "server_error", "drop_before", "drop_after"])
def test_the_sdks_retry_outlasts_each_fault(server: StorageServer, kind: str) -> None:
    from google.cloud.storage.retry import DEFAULT_RETRY

    server.faults.add(kind, 2, "Storage.Objects.*")
    _upload(_client(server), "inputs/train.csv", b"a,b\n1,2\n", retry=DEFAULT_RETRY.with_timeout(10).with_delay(initial=0.01))
    assert server.faults.count(kind) == 2
    assert _stored(server, "inputs/train.csv") == b"a,b\n1,2\n"


def test_calls_with_the_internal_header_are_never_failed(server: StorageServer) -> None:
    server.faults.add("server_error", 1, "*")
    _upload(_client(server, **{INTERNAL_HEADER: "1"}), "model/model.txt", b"weights")
    assert _stored(server, "model/model.txt") == b"weights" and server.faults.injected == []


def test_a_completed_resumable_session_answers_a_chunk_sent_again_with_the_object(server: StorageServer) -> None:
    import requests

    data = os.urandom(1024)
    start = requests.post(f"{server.url}/upload/storage/v1/b/{BUCKET}/o", params={"uploadType": "resumable"},
                          json={"name": "big.bin"}, timeout=10)
    session = start.headers["Location"]
    chunk = {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}
    first = requests.put(session, data=data, headers=chunk, timeout=10)
    again = requests.put(session, data=data, headers=chunk, timeout=10)  # as after a lost answer to the first
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["name"] == "big.bin" and again.json()["size"] == str(len(data))
    assert _stored(server, "big.bin") == data


@pytest.fixture(scope="module")
def vertex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from cloudtrain.emulators.vertex import VertexEmulator

    with VertexEmulator(root=tmp_path_factory.mktemp("vertex")) as emulator:
        yield emulator


def test_the_vertex_emulator_fails_storage_calls_and_spares_its_own(vertex: Any) -> None:
    from google.api_core.exceptions import TooManyRequests
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    vertex.faults.clear()
    vertex.faults.add("throttle", 1, "Storage.Objects.Insert")
    vertex.storage_client().bucket(vertex.bucket).blob("own.txt").upload_from_string(b"own", retry=None)
    assert vertex.faults.injected == []
    user = storage.Client(project=vertex.project, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": vertex.storage_host})
    with pytest.raises(TooManyRequests):
        user.bucket(vertex.bucket).blob("user.txt").upload_from_string(b"user", retry=None)
    assert vertex.faults.injected == [("throttle", "Storage.Objects.Insert")]


@pytest.mark.parametrize(("kind", "message"), [
    ("throttle", "Cloud Storage kept answering HTTP 429 while trying to upload the code bundle"),
    ("server_error", "Cloud Storage kept answering HTTP 503 while trying to upload the code bundle"),
    ("drop_before", "cannot reach Google Cloud while trying to upload the code bundle"),
], ids=["throttle", "server_error", "drop_before"])
def test_a_staging_upload_that_outlasts_the_retry_is_a_clear_error_and_creates_nothing(
        vertex: Any, tmp_path: Any, kind: str, message: str) -> None:
    from cloudtrain.errors import ProviderError
    from cloudtrain.providers.base import JobState
    from cloudtrain.providers.vertex import VertexProvider
    from cloudtrain.runner import Runner
    from cloudtrain.specfile import load_spec
    from cloudtrain.store import JobStore
    from cloudtrain.testing import SUCCEEDS, write_project

    vertex.faults.clear()
    provider = VertexProvider(environ=vertex.environment(), retry_seconds=0.01, retry_deadline=0.3)
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"vertex": provider})
    loaded = load_spec(write_project(tmp_path / "job", SUCCEEDS), [
        f"vertex.project={vertex.project}", f"vertex.location={vertex.location}",
        f"vertex.staging_bucket=gs://{vertex.bucket}", "resources.memory_gib=8"])
    plan, jobs = runner.plan(loaded, "vertex"), len(vertex.jobs())
    vertex.faults.add(kind, 10_000, "Storage.Objects.Insert")
    try:
        with pytest.raises(ProviderError) as caught:
            runner.submit(plan)
    finally:
        used = vertex.faults.count(kind)
        vertex.faults.clear()
    assert caught.value.message.startswith(message) and "Traceback" not in caught.value.message, caught.value.message
    assert used >= 2  # retried before giving up
    assert len(vertex.jobs()) == jobs  # never created
    assert runner.store.find_by_token("vertex", plan.submission_token).state is JobState.FAILED
