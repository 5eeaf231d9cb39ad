"""Vertex AI's ``python_package_spec``, as its prebuilt training containers run it: the packages in
``package_uris`` are copied from Cloud Storage and installed, then each replica runs
``python -m <python_module> <args>``.

The emulator installs them with this interpreter's pip, offline and without their dependencies
(``pip install --no-index --no-deps --no-build-isolation --target <job>/packages/<pool>``): no image
is pulled and nothing is downloaded, so the job uses the packages of the emulator's environment
(scikit-learn, ...) where the prebuilt image would have its own. The dependencies a package declares
(``install_requires``, e.g. ``CustomJob.from_local_script(requirements=[...])``) are not installed:
those this interpreter cannot import are named in the job's log before it starts (the job then runs,
and fails as the user's code would if it needs them). The replicas find the packages through
``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from email.parser import Parser
from pathlib import Path
from typing import Any, Callable

from cloudtrain.emulators.job_runner import JobSetupError

PIP_TIMEOUT_SECONDS = 600
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
#: Distribution names whose import name differs (only the common ones the prebuilt images carry).
_IMPORT_NAMES = {"scikit-learn": "sklearn", "google-cloud-aiplatform": "google.cloud.aiplatform",
                 "google-cloud-storage": "google.cloud.storage", "pyyaml": "yaml", "pillow": "PIL",
                 "tensorflow-cpu": "tensorflow", "protobuf": "google.protobuf"}


def split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, path = uri[len("gs://"):].partition("/")
    return bucket, path


def install_packages(uris: list[str], target: Path, storage: Any, note: Callable[[str], None]) -> list[str]:
    """Copy the ``gs://`` packages in ``uris`` from ``storage`` (a ``google.cloud.storage.Client``)
    and install them into ``target``; the dependencies they declare, as requirement strings."""
    downloads = target.parent / f"{target.name}-downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    files = []
    for uri in uris:
        bucket, path = split_gcs(uri)
        blob = storage.bucket(bucket).blob(path)
        local = downloads / Path(path).name
        try:
            blob.download_to_filename(str(local))
        except Exception as error:  # NotFound and transport errors: the request's data is wrong
            raise JobSetupError(f"python_package_spec.package_uris: cannot read {uri}: {type(error).__name__}: {error}") from None
        files.append(str(local))
    note(f"Installing the training packages: {', '.join(uris)}")
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "--no-warn-script-location", "--quiet", "--target", str(target), *files]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, cwd=str(downloads))
    except subprocess.TimeoutExpired:
        raise JobSetupError(f"installing {', '.join(uris)} took more than {PIP_TIMEOUT_SECONDS}s") from None
    if done.returncode != 0:
        lines = [line for line in f"{done.stdout}\n{done.stderr}".splitlines() if line.strip()]
        for line in lines:  # the whole of pip's account, in the job's log
            note(f"pip: {line}")
        # pip's own summary ends "See above for output": its first error lines are the cause
        causes = [line.strip() for line in lines if "error" in line.lower() and "see above" not in line.lower()][:4]
        shown = "\n".join(dict.fromkeys(causes + [line.strip() for line in lines[-2:]]))
        raise JobSetupError(f"pip could not install {', '.join(uris)} (its whole output is in the job's log):\n{shown}")
    return declared_requirements(target)


def declared_requirements(target: Path) -> list[str]:
    """``Requires-Dist`` of every distribution installed in ``target`` (extras-only ones left out)."""
    requirements: list[str] = []
    for metadata in sorted(target.glob("*.dist-info/METADATA")):
        message = Parser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"))
        requirements += [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]
    return requirements


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements whose module this interpreter cannot import."""
    missing = []
    for requirement in requirements:
        match = _REQUIREMENT_NAME.match(requirement)
        if not match:
            continue
        name = match.group(1).lower().replace("_", "-")
        module = _IMPORT_NAMES.get(name, name.replace("-", "_"))
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(requirement)
    return missing
