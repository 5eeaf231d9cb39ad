"""The code bundle staged with a cloud job: the spec's code directory plus ``cloudtrain/runtime``.

One walk of the code directory (:func:`select_code`) decides what is staged; the SageMaker and
Vertex archives (:func:`make_bundle`), Azure ML's staged copy and the ``submit --resume``
fingerprint (:func:`code_fingerprint`) all use that selection, so every cloud stages the same files.

What is staged, in order of precedence:

1. Never, whatever ``bundle.include`` says: version control directories (``.git``, ``.hg``,
   ``.svn``, ``.bzr``, ``_darcs``, ``.jj``), virtual environments (``.venv``, ``venv`` and any
   directory holding ``pyvenv.cfg`` or ``conda-meta``) and cloudtrain's own run directories
   (``.cloudtrain``, ``cloudtrain-run``).
2. Never: what a ``bundle.exclude`` pattern matches.
3. Left out unless a ``bundle.include`` pattern matches the file: caches (``__pycache__``,
   ``*.pyc``, ``node_modules``, ``.pytest_cache``...) and MLflow's local stores (``mlruns/``,
   ``mlflow.db``, which a script's earlier run may have left), what the code directory's ``.gitignore``
   files (its own and nested ones, each relative to its directory) and its ``.cloudtrainignore``
   exclude, and anything that looks like a credential (:data:`CREDENTIAL_PATTERNS`: ``.env``,
   ``*.pem``, ``id_*`` keys, ``.aws/``, ``service-account*.json``...). Credentials left out are
   reported in :attr:`Bundle.skipped`.

All patterns (``.gitignore``, ``.cloudtrainignore``, ``bundle.include``/``exclude``) follow git's
wildmatch rules (the ``pathspec`` package): a pattern without ``/`` matches a name at any depth,
``dir/`` only directories, ``**`` any number of directories, ``!`` re-includes. A directory that
is left out is not descended into, unless an include pattern could match beneath it.

Symbolic links, the same on every cloud: a link whose target lies inside the code directory is
staged as a regular file (or, for a directory, as a copy of its files) under the link's name,
provided the target itself would be staged; a link whose target resolves outside the code
directory (``~/.aws/credentials``, a dataset elsewhere), a broken link and a link loop (a link to
a directory it is inside of) are never followed: they are left out, listed in
:attr:`Bundle.skipped` and announced with one :class:`BundleWarning` per walk.

The archive is deterministic (sorted entries, fixed timestamps, owners and gzip header), so the
same files give the same bytes and the same sha256: a retried submission uploads the same object.
It is streamed to a temporary file, never held in memory; ``bundle.max_mib`` caps the sum of the
staged files' sizes (uncompressed, known before anything is read).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cloudtrain.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.spec import Bundle as BundleSettings

#: Directories never staged (rule 1 of the module docstring), whatever ``bundle.include`` says.
NEVER_STAGED = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj", ".venv", "venv", ".cloudtrain", "cloudtrain-run"})
#: Marker files of a virtual environment's root directory.
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
#: Left out unless included: caches and build leftovers.
CACHE_PATTERNS = ("__pycache__/", "*.pyc", "*.pyo", "*.egg-info/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/",
                  ".tox/", ".nox/", "node_modules/", ".ipynb_checkpoints/", ".DS_Store", "mlruns/", "mlflow.db")
#: Left out unless included, and reported: files that usually hold credentials.
CREDENTIAL_PATTERNS = (
    ".env", ".env.*", "*.env", ".envrc", "credentials", "*credentials*.json", "service-account*.json",
    ".git-credentials", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc", "**/.docker/config.json",
    "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_*_sk",
    ".aws/", ".azure/", "**/.config/gcloud/", ".ssh/", "**/.kube/config",
)
ENTRY_SHIM = "cloudtrain/runtime/entry.py"
_IGNORE_FILES = (".gitignore", ".cloudtrainignore")
_GLOB_CHARACTERS = set("*?[")


class BundleWarning(UserWarning):
    """Files of the code directory left out of the bundle that the user may have expected in it."""


def _spec(lines: Any) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(list(lines))


def _private_key_name(name: str) -> bool:
    """``id_*`` files without an extension (``id_work``, ``id_ecdsa_sk``) are ssh private keys."""
    return name.startswith("id_") and "." not in name


@dataclass
class CodeSelection:
    """The result of one walk: what is staged and what was left out for the user to see."""

    code_dir: Path
    #: archive name -> file on disk, sorted; the runtime's files last-write-win at their names
    files: dict[str, Path]
    #: relative path -> why it was left out (credentials and symbolic links only)
    skipped: dict[str, str]
    #: (path, size, mtime_ns) of every directory walked and file chosen: unchanged means the walk still holds
    signature: tuple[tuple[str, int, int], ...] = field(repr=False, default=())

    def still_valid(self) -> bool:
        try:
            return all(_stamp(Path(path)) == (size, mtime) for path, size, mtime in self.signature)
        except OSError:
            return False


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return (info.st_size if stat.S_ISREG(info.st_mode) else 0), info.st_mtime_ns


class _Walker:
    """One walk of ``code_dir`` under the rules of the module docstring."""

    def __init__(self, code_dir: Path, settings: "BundleSettings | None") -> None:
        self.root = code_dir.resolve()
        include = list(settings.include) if settings else []
        self.include = _spec(include)
        self.include_prefixes = [_literal_prefix(p) for p in include]
        self.exclude = _spec(settings.exclude if settings else [])
        self.cache = _spec(CACHE_PATTERNS)
        self.credentials = _spec(CREDENTIAL_PATTERNS)
        self.files: dict[str, Path] = {}
        self.skipped: dict[str, str] = {}
        self.stamps: list[tuple[str, int, int]] = []

    def run(self) -> CodeSelection:
        ignores: list[tuple[str, Any]] = []
        ignore = self.root / ".cloudtrainignore"
        if ignore.is_file():
            ignores.append(("", _spec(ignore.read_text().splitlines())))
            self.stamps.append((str(ignore), *_stamp(ignore)))
        self._walk(self.root, "", ignores, frozenset())
        for path, name in _runtime_files():
            self.files[name] = path
        return CodeSelection(self.root, dict(sorted(self.files.items())), dict(sorted(self.skipped.items())),
                             tuple(self.stamps))

    def _walk(self, directory: Path, prefix: str, ignores: list[tuple[str, Any]], chain: frozenset[Path]) -> None:
        chain = chain | {directory.resolve()}  # the real directories on the way here: a link into one is a loop
        self.stamps.append((str(directory), *_stamp(directory)))
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        gitignore = directory / ".gitignore"
        if gitignore.is_file():
            ignores = [*ignores, (prefix, _spec(gitignore.read_text(errors="replace").splitlines()))]
            self.stamps.append((str(gitignore), *_stamp(gitignore)))
        for entry in entries:
            relative = prefix + entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                target = self._link_target(path, relative, chain)
                if target is None:
                    continue
                is_dir = target.is_dir()
            else:
                is_dir = entry.is_dir(follow_symlinks=False)
                if not is_dir and not entry.is_file(follow_symlinks=False):
                    continue  # sockets, fifos, devices
            if is_dir:
                verdict = self._verdict(relative + "/", ignores, path)
                if verdict == "stage" or (verdict not in ("never", "excluded") and self._may_include_beneath(relative)):
                    self._walk(path, relative + "/", ignores, chain)
            elif self._verdict(relative, ignores, path) == "stage":
                self.files[relative] = path
                self.stamps.append((str(path), *_stamp(path)))

    def _link_target(self, link: Path, relative: str, chain: frozenset[Path]) -> Path | None:
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: a loop, on Python < 3.13
            self.skipped[relative] = "symlink loop or broken symlink: not followed"
            return None
        if not target.is_relative_to(self.root):
            self.skipped[relative] = f"symlink to {target}, outside the code directory: not followed"
            return None
        if target.is_dir() and any(real.is_relative_to(target) for real in chain):
            self.skipped[relative] = "symlink loop: a link to a directory it is inside of: not followed"
            return None
        inner = target.relative_to(self.root).as_posix() + ("/" if target.is_dir() else "")
        if self._verdict(inner, [], target, report=False) != "stage":
            self.skipped[relative] = f"symlink to {inner}, which is not staged"
            return None
        return target

    def _verdict(self, relative: str, ignores: list[tuple[str, Any]], path: Path, report: bool = True) -> str:
        """'stage' or why not, for a relative path (directories end with '/')."""
        parts = relative.rstrip("/").split("/")
        if set(parts if relative.endswith("/") else parts[:-1]) & NEVER_STAGED:
            return "never"
        if relative.endswith("/") and any((path / marker).exists() for marker in ENVIRONMENT_MARKERS):
            return "never"
        if self.exclude.match_file(relative):
            return "excluded"
        included = self.include.match_file(relative)
        credential = self.credentials.match_file(relative) or (not relative.endswith("/") and _private_key_name(parts[-1]))
        if credential and not included:
            if report:
                self.skipped[relative] = "looks like a credential (list it in bundle.include to stage it)"
            return "credential"
        if included:
            return "stage"
        if self.cache.match_file(relative):
            return "cache"
        for base, spec in reversed(ignores):  # the deepest .gitignore that decides wins, as in git
            if relative.startswith(base):
                decision = spec.check_file(relative[len(base):])
                if decision.include is not None:
                    return "ignored" if decision.include else "stage"
        return "stage"

    def _may_include_beneath(self, relative: str) -> bool:
        return any(prefix == "" or prefix.startswith(relative + "/") or (relative + "/").startswith(prefix)
                   for prefix in self.include_prefixes)


def _literal_prefix(pattern: str) -> str:
    """The directory part of an include pattern before its first wildcard ('' when it may match anywhere)."""
    pattern = pattern.lstrip("/")
    if "/" not in pattern.rstrip("/"):
        return ""  # a bare name matches at any depth
    cut = min((pattern.index(c) for c in _GLOB_CHARACTERS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head[:head.rfind("/") + 1] if "/" in head else ""


def _runtime_files() -> list[tuple[Path, str]]:
    package = Path(__file__).resolve().parents[1]
    found = [(package / "__init__.py", "cloudtrain/__init__.py")]
    return found + [(path, f"cloudtrain/runtime/{path.name}") for path in sorted((package / "runtime").glob("*.py"))]


_RECENT: OrderedDict[tuple[Any, ...], CodeSelection] = OrderedDict()


def _key(code_dir: Path, settings: "BundleSettings | None") -> tuple[Any, ...]:
    include, exclude = (tuple(settings.include), tuple(settings.exclude)) if settings else ((), ())
    return str(Path(code_dir).resolve()), include, exclude


def select_code(code_dir: Path, settings: "BundleSettings | None" = None, *, reuse: bool = False) -> CodeSelection:
    """Walk ``code_dir`` once and choose what is staged (see the module docstring).

    With ``reuse``, the selection of an earlier walk of the same directory and settings in this
    process (the fingerprint a submission records, then its bundle) is taken when no directory,
    ignore file or chosen file of it has changed since (sizes and modification times in ns), instead
    of walking again; adding, removing or renaming a file changes its directory's time."""
    key = _key(code_dir, settings)
    if reuse:
        recent = _RECENT.get(key)
        if recent is not None and recent.still_valid():
            _RECENT.move_to_end(key)
            return recent
    selection = _Walker(Path(code_dir), settings).run()
    links = {name: why for name, why in selection.skipped.items() if why.startswith("symlink")}
    if links:
        warnings.warn(BundleWarning(f"{len(links)} symbolic link(s) of {code_dir} left out of the bundle: "
                                    + "; ".join(f"{name} ({why})" for name, why in links.items())), stacklevel=2)
    _RECENT[key] = selection
    while len(_RECENT) > 8:
        _RECENT.popitem(last=False)
    return selection


def bundle_files(code_dir: Path, settings: "BundleSettings | None" = None) -> dict[str, Path]:
    """Archive name -> file on disk: the code directory's staged files, then cloudtrain's runtime (which wins)."""
    return select_code(code_dir, settings).files


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def code_fingerprint(code_dir: Path, settings: "BundleSettings | None" = None) -> str:
    """A sha256 of what a bundle of ``code_dir`` holds (names and contents), without building it.

    Equal to :attr:`Bundle.fingerprint` of the same files; shares its walk with the bundle of the
    submission that follows (``make_bundle(..., reuse=True)``, see :func:`select_code`)."""
    digest = hashlib.sha256()
    for name, path in select_code(code_dir, settings, reuse=True).files.items():
        digest.update(name.encode() + b"\0" + _file_digest(path))
    return digest.hexdigest()


def check_size(selection: CodeSelection, max_mib: float) -> int:
    """The staged files' total size in bytes; a :class:`SpecError` naming the biggest when over ``max_mib``."""
    sizes = {name: path.stat().st_size for name, path in selection.files.items()}
    total = sum(sizes.values())
    if total > max_mib * 1024 * 1024:
        biggest = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:5]
        listing = ", ".join(f"{name} ({size / 2**20:.1f} MiB)" for name, size in biggest)
        raise SpecError(f"the code bundle of {selection.code_dir} would hold {total / 2**20:.1f} MiB in "
                        f"{len(sizes)} files, over bundle.max_mib ({max_mib:g} MiB); the biggest: {listing}",
                        "leave data out of the code directory (bundle.exclude, .gitignore or .cloudtrainignore) and pass "
                        "it as an input, or raise bundle.max_mib")
    return total


class _HashingWriter:
    """A write-only file that hashes what passes through it (the archive's sha256)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target, self.digest, self.size = target, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


class _HashingReader:
    def __init__(self, source: BinaryIO) -> None:
        self.source, self.digest = source, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


@dataclass(frozen=True)
class Bundle:
    """A built code bundle: a ``.tar.gz`` in a temporary file, removed by :meth:`close` (or ``with``)."""

    path: Path
    #: sha256 of the archive's bytes
    sha256: str
    #: number of files in the archive (the runtime's included)
    files: int
    #: size of the archive (compressed) and of the files it holds (uncompressed), in bytes
    size_bytes: int
    content_bytes: int
    #: relative path -> why it was left out (credentials, symbolic links)
    skipped: dict[str, str]
    #: :func:`code_fingerprint` of the same files
    fingerprint: str
    names: tuple[str, ...] = field(repr=False, default=())

    def __post_init__(self) -> None:
        weakref.finalize(self, shutil.rmtree, str(self.path.parent), True)

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def close(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_bundle(code_dir: Path, settings: "BundleSettings | None" = None, *, reuse: bool = False) -> Bundle:
    """Stream the bundle of ``code_dir`` to a temporary file, reading each file once.

    Refuses (:class:`SpecError`) when the files add up to more than ``settings.max_mib``."""
    selection = select_code(code_dir, settings, reuse=reuse)
    content_bytes = check_size(selection, settings.max_mib if settings else 512)
    folder = Path(tempfile.mkdtemp(prefix="cloudtrain-bundle-"))
    target = folder / "code.tar.gz"
    fingerprint = hashlib.sha256()
    try:
        with open(target, "wb") as raw:
            writer = _HashingWriter(raw)
            with gzip.GzipFile(filename="", fileobj=writer, mode="wb", mtime=0) as zipped:  # type: ignore[arg-type]
                with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
                    for name, path in selection.files.items():
                        with open(path, "rb") as source:
                            info = tarfile.TarInfo(name)
                            info.size, info.mtime = os.fstat(source.fileno()).st_size, 0
                            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                            reader = _HashingReader(source)
                            tar.addfile(info, reader)  # type: ignore[arg-type]
                            fingerprint.update(name.encode() + b"\0" + reader.digest.digest())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Bundle(path=target, sha256=writer.digest.hexdigest(), files=len(selection.files), size_bytes=writer.size,
                  content_bytes=content_bytes, skipped=selection.skipped, fingerprint=fingerprint.hexdigest(),
                  names=tuple(selection.files))


def entry_environment(plan: "Plan") -> dict[str, str]:
    """The variables every cloud job carries for the entry shim (:mod:`cloudtrain.runtime.entry`)
    and the runtime context: the spec's ``env``, then what to run and how. Each provider adds its
    cloud's own (checkpoint directory, inputs...)."""
    from cloudtrain.runtime.invocation import resolve

    spec = plan.spec
    env = dict(spec.env)
    env["CLOUDTRAIN_JOB_ID"] = plan.job_name
    known = {"job_name": plan.job_name}  # hyperparameters are put in inside the job: a tuning trial has its own
    if spec.command is not None:
        env["CLOUDTRAIN_COMMAND"] = resolve(spec.command, known, strict=False)
    else:
        env["CLOUDTRAIN_ENTRYPOINT" if spec.entrypoint else "CLOUDTRAIN_MODULE"] = spec.entrypoint or spec.module or ""
    args = [resolve(arg, known, strict=False) for arg in spec.args]
    if args:
        env["CLOUDTRAIN_ARGS"] = json.dumps(args)
    if spec.hyperparameters_as_args and spec.hyperparameters:
        env["CLOUDTRAIN_HP_FLAGS"] = "1"  # the shim appends --name value for each of the job's hyperparameters
    if spec.setup:
        env["CLOUDTRAIN_SETUP"] = json.dumps(spec.setup)
    requirements = spec.requirements or ("requirements.txt" if (Path(spec.code) / "requirements.txt").is_file() else None)
    if requirements:
        env["CLOUDTRAIN_REQUIREMENTS"] = requirements
    if spec.distribution.type == "torchrun":
        env["CLOUDTRAIN_PROCESSES_PER_NODE"] = str(plan.processes_per_node)
    if spec.checkpoint.enabled and spec.checkpoint.every:
        env["CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS"] = str(int(spec.checkpoint.every.total_seconds()))
    files = {name: item.file_name for name, item in spec.inputs.items() if item.file_name}
    if files:  # the runtime context names the file, where the cloud hands a file input's folder (SageMaker's channel)
        env["CLOUDTRAIN_INPUT_FILES"] = json.dumps(files, sort_keys=True)
    if spec.secrets:  # references only; the entry shim reads the values inside the job
        env["CLOUDTRAIN_SECRETS"] = json.dumps({name: ref.model_dump(exclude_none=True) for name, ref in spec.secrets.items()},
                                               sort_keys=True)
    env["PYTHONUNBUFFERED"] = "1"
    return env
