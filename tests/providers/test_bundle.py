"""The code bundle: what goes in, what stays out, and that it is deterministic."""

from __future__ import annotations

import tarfile
from pathlib import Path

from cloudtrain.providers.bundle import Bundle, code_fingerprint, make_bundle


def names(bundle: Bundle) -> set[str]:
    with tarfile.open(bundle.path, mode="r:gz") as tar:
        return set(tar.getnames())


def test_bundle_contents(tmp_path: Path) -> None:
    for path in ["train.py", "pkg/model.py", ".git/config", "pkg/__pycache__/m.pyc", ".venv/lib/x.py",
                 ".cloudtrain/runs/a/log", "data/big.bin", "notes.tmp", "sub/.hidden", "mlflow.db", "mlruns/0/meta.yaml"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(path)
    (tmp_path / ".cloudtrainignore").write_text("# comments are ignored\ndata\n*.tmp\n")
    bundle = make_bundle(tmp_path)
    contents = names(bundle)
    assert {"train.py", "pkg/model.py", "sub/.hidden", ".cloudtrainignore"} <= contents
    assert {"cloudtrain/__init__.py", "cloudtrain/runtime/context.py", "cloudtrain/runtime/entry.py"} <= contents
    assert not any(n.startswith((".git/", ".venv/", ".cloudtrain/", "data/", "mlruns/")) or "__pycache__" in n or n.endswith(".tmp")
                   or n == "mlflow.db" for n in contents)
    assert bundle.files == len(contents) == len(bundle.names)
    assert bundle.size_bytes == bundle.path.stat().st_size and bundle.content_bytes > 0


def test_bundle_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    first = make_bundle(tmp_path)
    (tmp_path / "train.py").touch()  # a new mtime changes nothing
    assert make_bundle(tmp_path).sha256 == first.sha256
    (tmp_path / "train.py").write_text("print(2)\n")
    assert make_bundle(tmp_path).sha256 != first.sha256


def test_fingerprint_is_the_bundles(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    fingerprint = code_fingerprint(tmp_path)
    with make_bundle(tmp_path, reuse=True) as bundle:
        assert bundle.fingerprint == fingerprint
        path = bundle.path
    assert not path.exists()  # the temporary archive is gone once closed


def test_credential_files_are_never_staged(tmp_path: Path) -> None:
    for path in ["train.py", ".env", ".env.local", "keys/server.pem", ".aws/credentials", "config/settings.py"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    contents = names(make_bundle(tmp_path))
    assert {"train.py", "config/settings.py"} <= contents
    assert not {".env", ".env.local", "keys/server.pem", ".aws/credentials"} & contents
