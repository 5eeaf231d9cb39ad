"""What must never leave the machine in a code bundle: credentials, ignored files, links outside the code.

Every cloud stages the same selection: SageMaker and Vertex upload :func:`make_bundle`'s archive,
Azure ML the copy :func:`staged_code` makes; both are checked here.
"""

from __future__ import annotations

import os
import tarfile
import tracemalloc
import warnings
from pathlib import Path

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


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    plant(code, CREDENTIALS + IGNORED + NEVER + STAGED)
    (code / ".gitignore").write_text("data/\n/build\n*.log\n")
    (code / "pkg" / ".gitignore").write_text("generated/*\n!generated/keep.py\n")
    (code / ".cloudtrainignore").write_text("*.tmp\n")
    home = tmp_path / "home"  # a fake home: never the real one
    plant(home, [".aws/credentials", "datasets/big/part-0"])
    (code / "aws-credentials-link").symlink_to(home / ".aws" / "credentials")
    (code / "linked-aws").symlink_to(home / ".aws", target_is_directory=True)
    (code / "datasets").symlink_to(home / "datasets", target_is_directory=True)
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
