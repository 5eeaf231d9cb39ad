"""What must never leave the machine in a code bundle: credentials, ignored files, links outside the code.

Every cloud stages the same selection: SageMaker and Vertex upload :func:`make_bundle`'s archive,
Azure ML the copy :func:`staged_code` makes; both are checked here. Then end to end, on every
backend of the conformance suite (each cloud's emulator through its real SDK, and the local
executor): a submission from a directory with planted credentials, links to a fake home's
``.aws/credentials`` and secret values in the submitting process's environment leaves none of them
in a staged object, the rendered request, the job's files or log lines, the store or the error.
"""

from __future__ import annotations

import json
import os
import tarfile
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest

from cloudtrain.errors import SpecError
from cloudtrain.providers.bundle import BundleWarning, code_fingerprint, make_bundle, select_code
from cloudtrain.spec import Bundle as BundleSettings

CREDENTIALS = [
    "credentials", ".envrc", "secrets.env", ".npmrc", ".git-credentials", ".docker/config.json",
    "service-account.json", "service-account-prod.json", "gcp-credentials.json", "deploy/server.pem", "tls/server.key",
    "keys/id_rsa", "keys/id_ed25519", "keys/id_work", ".netrc", ".pgpass", ".aws/credentials", ".aws/config",
    ".azure/accessTokens.json", "home/.config/gcloud/application_default_credentials.json", "cert.p12", "cert.pfx",
    ".env", ".env.production", "configs/prod.env", "sub/.ssh/id_ecdsa",
]
IGNORED = ["data/raw.csv", "build/out.bin", "notes.log", "pkg/generated/table.py", "scratch.tmp"]
NEVER = [".git/config", ".hg/store", ".venv/bin/python", "venv/lib/x.py", "env312/pyvenv.cfg", "env312/lib/site.py",
         ".cloudtrain/runs/a/log", "pkg/__pycache__/m.cpython-311.pyc", ".pytest_cache/v/x", "node_modules/a/index.js"]
STAGED = ["train.py", "pkg/model.py", "pkg/generated/keep.py", "configs/settings.py", "id_utils.py", "README.md",
          ".gitignore", "pkg/.gitignore", ".cloudtrainignore"]


def plant(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"secret {path}\n")


def plant_secrets(code: Path, home: Path) -> None:
    """Credentials, ignored and never-staged files in ``code`` (each holding ``secret <path>``), the
    ignore files that ignore some, and links to a fake ``home``'s credentials and data."""
    plant(code, CREDENTIALS + IGNORED + NEVER)
    (code / ".gitignore").write_text("data/\n/build\n*.log\n")
    (code / "pkg").mkdir(exist_ok=True)
    (code / "pkg" / ".gitignore").write_text("generated/*\n!generated/keep.py\n")
    (code / ".cloudtrainignore").write_text("*.tmp\n")
    plant(home, [".aws/credentials", "datasets/big/part-0"])
    (code / "aws-credentials-link").symlink_to(home / ".aws" / "credentials")
    (code / "linked-aws").symlink_to(home / ".aws", target_is_directory=True)
    (code / "datasets").symlink_to(home / "datasets", target_is_directory=True)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    plant(code, STAGED)
    plant_secrets(code, tmp_path / "home")  # a fake home: never the real one
    return code


def archived(code: Path, settings: BundleSettings | None = None) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)
        with make_bundle(code, settings) as bundle, tarfile.open(bundle.path, mode="r:gz") as tar:
            return set(tar.getnames())


def copied(code: Path, settings: BundleSettings | None = None) -> set[str]:
    from cloudtrain.providers.azureml import staged_code

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)
        with staged_code(code, settings) as staged:
            return {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}


@pytest.mark.parametrize("stage", [archived, copied], ids=["sagemaker-vertex-archive", "azureml-copy"])
def test_no_credential_ignored_or_outside_file_is_staged(code: Path, stage) -> None:
    contents = stage(code)
    assert set(STAGED) <= contents
    assert {"cloudtrain/__init__.py", "cloudtrain/runtime/entry.py", "cloudtrain/runtime/context.py"} <= contents
    leaked = contents & set(CREDENTIALS + IGNORED + NEVER)
    assert not leaked
    assert not any(name.startswith(("aws-credentials-link", "linked-aws", "datasets")) for name in contents)
    assert not any("secret" in name and name.endswith("credentials") for name in contents)


def test_the_archive_holds_no_credential_bytes(code: Path) -> None:
    with pytest.warns(BundleWarning), make_bundle(code) as bundle:
        data = bundle.path.read_bytes()
    import gzip

    text = gzip.decompress(data)
    for path in CREDENTIALS + IGNORED + NEVER:
        assert f"secret {path}\n".encode() not in text, path
    assert b"secret .aws/credentials" not in text  # neither the planted one nor the fake home's


def test_skipped_says_why_and_links_warn(code: Path) -> None:
    with pytest.warns(BundleWarning, match="aws-credentials-link"):
        selection = select_code(code)
    assert "outside the code directory" in selection.skipped["aws-credentials-link"]
    assert "outside the code directory" in selection.skipped["linked-aws"]
    assert "outside the code directory" in selection.skipped["datasets"]
    assert "credential" in selection.skipped[".env"]
    assert "credential" in selection.skipped[".aws/"]
    assert not any(name.startswith((".git/", "data/", ".venv/")) for name in selection.skipped)  # only what may surprise


@pytest.mark.parametrize("stage", [archived, copied], ids=["sagemaker-vertex-archive", "azureml-copy"])
def test_include_brings_one_back(code: Path, stage) -> None:
    settings = BundleSettings(include=["configs/prod.env", "data/raw.csv"], exclude=["README.md"])
    contents = stage(code, settings)
    assert {"configs/prod.env", "data/raw.csv"} <= contents
    assert "README.md" not in contents
    assert not contents & (set(CREDENTIALS + IGNORED) - {"configs/prod.env", "data/raw.csv"})


def test_include_never_brings_back_vcs_or_environments(code: Path) -> None:
    assert not archived(code, BundleSettings(include=[".git/config", ".venv/**", "env312/**"])) & set(NEVER)


def test_links_inside_the_code_are_staged_as_files(tmp_path: Path) -> None:
    plant(tmp_path, ["train.py", "pkg/model.py", ".env"])
    (tmp_path / "alias.py").symlink_to("train.py")
    (tmp_path / "pkg-alias").symlink_to("pkg", target_is_directory=True)
    (tmp_path / "env-alias").symlink_to(".env")  # the target is a credential: not through a link either
    (tmp_path / "dangling").symlink_to("missing.py")
    contents = archived(tmp_path)
    assert {"train.py", "alias.py", "pkg/model.py", "pkg-alias/model.py"} <= contents
    assert not {"env-alias", ".env", "dangling"} & contents


def test_a_symlink_loop_neither_hangs_nor_crashes(tmp_path: Path) -> None:
    plant(tmp_path, ["train.py", "a/x.py", "b/y.py"])
    (tmp_path / "self").symlink_to("self")  # ELOOP
    (tmp_path / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "a" / "to-b").symlink_to("../b", target_is_directory=True)
    (tmp_path / "b" / "to-a").symlink_to("../a", target_is_directory=True)
    with pytest.warns(BundleWarning):
        selection = select_code(tmp_path)
    assert {"train.py", "a/x.py", "b/y.py", "a/to-b/y.py", "b/to-a/x.py"} <= set(selection.files)
    assert "loop" in selection.skipped["self"] and "loop" in selection.skipped["a/up"]
    assert "loop" in selection.skipped["a/to-b/to-a"]
    assert len(selection.files) < 50
    archived(tmp_path)


def test_max_mib_refuses_naming_the_biggest(tmp_path: Path) -> None:
    plant(tmp_path, ["train.py"])
    with open(tmp_path / "weights.bin", "wb") as handle:
        handle.truncate(3 * 1024 * 1024)
    with pytest.raises(SpecError, match=r"bundle\.max_mib.*weights\.bin \(3\.0 MiB\)"):
        make_bundle(tmp_path, BundleSettings(max_mib=2))
    from cloudtrain.providers.azureml import staged_code

    with pytest.raises(SpecError, match=r"bundle\.max_mib"):
        with staged_code(tmp_path, BundleSettings(max_mib=2)):
            pass
    with make_bundle(tmp_path, BundleSettings(max_mib=4)) as bundle:
        assert bundle.content_bytes > 3 * 1024 * 1024 > bundle.size_bytes


def test_a_large_file_keeps_memory_flat(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    plant(tmp_path, ["train.py"])
    with open(tmp_path / "zeros.bin", "wb") as handle:
        handle.truncate(size)  # sparse: no disk written
    tracemalloc.start()
    try:
        fingerprint = code_fingerprint(tmp_path)
        with make_bundle(tmp_path, reuse=True) as bundle:
            peak = tracemalloc.get_traced_memory()[1]
            assert bundle.fingerprint == fingerprint and bundle.content_bytes > size
    finally:
        tracemalloc.stop()
    assert peak < size / 8, f"peak {peak / 2**20:.1f} MiB of Python memory for a 64 MiB file"


def test_the_walk_is_reused_until_the_code_changes(tmp_path: Path) -> None:
    plant(tmp_path, ["train.py"])
    first = select_code(tmp_path)
    assert select_code(tmp_path, reuse=True) is first
    assert select_code(tmp_path, BundleSettings(exclude=["x"]), reuse=True) is not first  # other settings, other walk
    plant(tmp_path, ["new.py"])
    os.utime(tmp_path, ns=(0, 0))  # a changed directory stamp, even on a coarse clock
    changed = select_code(tmp_path, reuse=True)
    assert changed is not first and "new.py" in changed.files
    (tmp_path / "new.py").write_text("changed, and longer\n")
    assert select_code(tmp_path, reuse=True) is not changed
    (tmp_path / ".cloudtrainignore").write_text("new.py\n")
    assert "new.py" not in select_code(tmp_path, reuse=True).files


# -- end to end, on every backend ----------------------------------------------------------------

#: secret values in the submitting process's environment (the spec names none of them, but local's ``secrets``)
PLANTED_ENV = {"WANDB_API_KEY": "planted-wandb-9f2c41d7", "HF_TOKEN": "planted-hf-5e08a3b1",
               "MY_TOKEN": "planted-token-c3d9e7f0"}
#: the job reports each file it was given that holds a planted secret, and a digest of the one
#: secret the spec asks for (local only); then it fails, so that its error is checked too
REPORTS_LEAKS = """
import hashlib, os
from cloudtrain.runtime import context
context()
walked = 0
for root, _, files in os.walk("."):
    for name in files:
        walked += 1
        try:
            with open(os.path.join(root, name), errors="replace") as handle:
                head = handle.read(64)
        except OSError:
            continue
        if head.startswith("secret "):
            print("LEAKED FILE", os.path.join(root, name), flush=True)
print("walked", walked, "files", flush=True)
print("secret digest:", hashlib.sha256(os.environ.get("TOKEN", "").encode()).hexdigest()[:16], flush=True)
raise RuntimeError("the training data is empty")
"""


def _staged_objects(backend: Any) -> dict[str, bytes]:
    """Every object in the emulated cloud's storage (name -> bytes), gzip archives expanded."""
    import gzip

    emulator, objects = backend.emulator, {}
    if backend.name == "vertex":
        client = emulator.storage_client()
        for bucket in client.list_buckets():
            for blob in client.list_blobs(bucket.name):
                objects[f"gs://{bucket.name}/{blob.name}"] = blob.download_as_bytes()
    elif backend.name == "sagemaker":
        import boto3

        s3 = boto3.client("s3")  # the emulator's variables are set for the test
        for bucket in s3.list_buckets()["Buckets"]:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
                    objects[f"s3://{bucket['Name']}/{item['Key']}"] = body
    elif backend.name == "azureml":
        objects = {name: emulator.blob(name) for name in emulator.blob_names()}
    return {name: gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data for name, data in objects.items()}


def _cloud_jobs(backend: Any) -> str:
    """The jobs as the emulated cloud holds them (what its create calls carried), as text."""
    emulator = backend.emulator
    if backend.name == "vertex":
        from google.cloud import aiplatform_v1

        return "\n".join(aiplatform_v1.CustomJob.to_json(job) for job in emulator.jobs())
    if backend.name == "sagemaker":
        import boto3

        sagemaker = boto3.client("sagemaker")
        return "\n".join(json.dumps(sagemaker.describe_training_job(TrainingJobName=name), default=str)
                         for name in emulator.training_jobs())
    if backend.name == "azureml":
        with emulator.service.lock:
            return json.dumps([emulator.service.jobs, emulator.service.requests], default=str)
    return ""


def _leaks(text: bytes | str, where: str) -> list[str]:
    data = text.encode(errors="replace") if isinstance(text, str) else text
    markers = [f"secret {path}\n".encode() for path in CREDENTIALS + IGNORED + NEVER + [".aws/credentials"]]
    return [f"{where}: {marker!r}" for marker in markers + [v.encode() for v in PLANTED_ENV.values()] if marker in data]


def test_no_planted_secret_reaches_the_cloud_store_logs_or_errors(backend: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudtrain.providers.base import JobState
    from cloudtrain.specfile import load_spec
    from cloudtrain.testing import write_project

    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    code = tmp_path / "planted"
    spec = write_project(code, REPORTS_LEAKS)
    plant_secrets(code, tmp_path / "home")
    local = backend.created_jobs is None  # runs in the code directory itself: nothing is staged
    extra = ["secrets.TOKEN.env=MY_TOKEN"] if local else []  # clouds read secrets from their own stores only
    runner = backend.runner
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)  # the links outside the code are skipped with a warning
        plan = runner.plan(load_spec(spec, [*backend.overrides, *extra]), backend.name)
        request = runner.render(plan).to_text()
        record = runner.submit(plan).record
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=300)
    lines = list(runner.logs(record.id))
    assert status.state is JobState.FAILED and "the training data is empty" in (status.message or ""), status
    assert any(line.endswith("files") and "walked" in line for line in lines), lines
    if local:
        import hashlib

        assert f"secret digest: {hashlib.sha256(PLANTED_ENV['MY_TOKEN'].encode()).hexdigest()[:16]}" in lines, lines
    else:
        assert not [line for line in lines if "LEAKED FILE" in line], lines

    leaks = _leaks(request, "the rendered request") + _leaks("\n".join(lines), "the job's log lines")
    leaks += _leaks(status.message or "", "the job's error") + _leaks(_cloud_jobs(backend), "the cloud's job")
    leaks += _leaks(json.dumps(runner.store.get(record.id).to_dict(), default=str), "the store row")
    for path in tmp_path.glob("jobs.db*"):  # the store's file itself, journal included
        leaks += _leaks(path.read_bytes(), str(path.name))
    staged = _staged_objects(backend)
    assert local or (staged and _cloud_jobs(backend)), f"{backend.name}: nothing was found in the emulated storage or jobs"
    for name, data in staged.items():
        leaks += _leaks(data, name)
    runs = tmp_path / "runs"  # the local executor's run directories
    for path in (p for p in runs.rglob("*") if p.is_file()) if runs.is_dir() else ():
        leaks += _leaks(path.read_bytes(), str(path))
    assert not leaks, leaks
