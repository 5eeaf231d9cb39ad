"""The code bundle staged with a cloud job: the spec's code directory plus ``cloudtrain/runtime``.

The archive is deterministic (sorted entries, fixed timestamps and owners), so the same code gives
the same bytes and the same digest: a retried submission uploads to the same key. Left out: version
control and cache directories, virtual environments, cloudtrain's own run directories, and the
patterns of a ``.cloudtrainignore`` file in the code directory (one ``fnmatch`` pattern a line,
matched against each relative path and each of its parts), and, always, files that usually hold
credentials (:data:`SECRET_PATTERNS`: ``.env``, keys, ``.aws``...).
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

#: Never staged: they hold credentials far more often than code needs them.
SECRET_PATTERNS = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", ".aws", ".ssh", ".azure", ".netrc",
                   "credentials.json", "*.p12")
ALWAYS_EXCLUDED = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".cloudtrain", ".pytest_cache",
                   ".mypy_cache", ".ruff_cache", "node_modules", ".ipynb_checkpoints", ".DS_Store", "cloudtrain-run"}
ENTRY_SHIM = "cloudtrain/runtime/entry.py"


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    files: int


def _ignore_patterns(code_dir: Path) -> list[str]:
    path = code_dir / ".cloudtrainignore"
    if not path.is_file():
        return []
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def _excluded(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    patterns = [*SECRET_PATTERNS, *patterns]
    if any(p in ALWAYS_EXCLUDED or p.endswith(".pyc") or p.endswith(".egg-info") for p in parts):
        return True
    return any(fnmatch.fnmatch(relative, pat) or any(fnmatch.fnmatch(p, pat) for p in parts) for pat in patterns)


def bundle_files(code_dir: Path) -> dict[str, Path]:
    """Archive name -> file on disk: the code directory, then cloudtrain's runtime (which wins)."""
    code_dir = Path(code_dir)
    patterns = _ignore_patterns(code_dir)
    files: dict[str, Path] = {}
    for root, dirs, names in os.walk(code_dir):
        rel_root = Path(root).relative_to(code_dir)
        dirs[:] = sorted(d for d in dirs if not _excluded((rel_root / d).as_posix(), patterns))
        for name in names:
            relative = (rel_root / name).as_posix()
            path = Path(root) / name
            if path.is_file() and not _excluded(relative, patterns):
                files[relative] = path
    package = Path(__file__).resolve().parents[1]
    files["cloudtrain/__init__.py"] = package / "__init__.py"
    for path in sorted((package / "runtime").glob("*.py")):
        files[f"cloudtrain/runtime/{path.name}"] = path
    return dict(sorted(files.items()))


def code_fingerprint(code_dir: Path) -> str:
    """A sha256 of what a bundle of ``code_dir`` holds (names and contents), without building it."""
    digest = hashlib.sha256()
    for name, path in bundle_files(code_dir).items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def make_bundle(code_dir: Path) -> Bundle:
    buffer = io.BytesIO()
    files = bundle_files(code_dir)
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in files.items():
                info = tarfile.TarInfo(name)
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o755 if os.access(path, os.X_OK) else 0o644
                tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest(), files=len(files))


def entry_environment(plan: "Plan") -> dict[str, str]:
    """The variables every cloud job carries for the entry shim (:mod:`cloudtrain.runtime.entry`)
    and the runtime context: the spec's ``env``, then what to run and how. Each provider adds its
    cloud's own (checkpoint directory, inputs...)."""
    from cloudtrain.runtime.invocation import render_args, resolve, spec_values

    spec = plan.spec
    env = dict(spec.env)
    env["CLOUDTRAIN_JOB_ID"] = plan.job_name
    if spec.command is not None:
        env["CLOUDTRAIN_COMMAND"] = resolve(spec.command, spec_values(spec.hyperparameters, plan.job_name), strict=False)
    else:
        env["CLOUDTRAIN_ENTRYPOINT" if spec.entrypoint else "CLOUDTRAIN_MODULE"] = spec.entrypoint or spec.module or ""
    args = render_args(spec.args, spec.hyperparameters, spec.hyperparameters_as_args, plan.job_name)
    if args:
        env["CLOUDTRAIN_ARGS"] = json.dumps(args)
    if spec.setup:
        env["CLOUDTRAIN_SETUP"] = json.dumps(spec.setup)
    requirements = spec.requirements or ("requirements.txt" if (Path(spec.code) / "requirements.txt").is_file() else None)
    if requirements:
        env["CLOUDTRAIN_REQUIREMENTS"] = requirements
    if spec.distribution.type == "torchrun":
        env["CLOUDTRAIN_PROCESSES_PER_NODE"] = str(plan.processes_per_node)
    if spec.checkpoint.enabled and spec.checkpoint.every:
        env["CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS"] = str(int(spec.checkpoint.every.total_seconds()))
    if spec.secrets:  # references only; the entry shim reads the values inside the job
        env["CLOUDTRAIN_SECRETS"] = json.dumps({name: ref.model_dump(exclude_none=True) for name, ref in spec.secrets.items()},
                                               sort_keys=True)
    env["PYTHONUNBUFFERED"] = "1"
    return env
