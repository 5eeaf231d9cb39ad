"""toyct: a toy cloudtrain backend in its own package, known to cloudtrain only through its entry
point (``[project.entry-points."cloudtrain.providers"] toy = "toyct:ToyProvider"``).

Its "cloud" is a directory, the ``toy.root`` setting. Submitting stages the code bundle (the code
directory plus ``cloudtrain/runtime``, as a cloud would receive it) under ``<root>/staging/<job>/``,
then creates the job: ``<root>/jobs/<job>/`` appears at once (written aside, then renamed; the
rename fails if the job exists, which is how a retried create is recognised) holding
``job.json`` (submission token, queue) and ``request.json`` (what to run), and a detached
supervisor (:mod:`cloudtrain.providers.process`) runs the staged entry shim
(``cloudtrain/runtime/entry.py``, as the clouds' containers do) under cloudtrain's runtime contract
(``CLOUDTRAIN_*`` variables), writing ``status.json`` and ``logs/job.log``.
Status and logs are read from those files, and cancel sends the supervisor SIGTERM, as the local
backend does (:mod:`cloudtrain.providers.run_directory`).

It declares the minimal :class:`~cloudtrain.providers.Capabilities` (one node, no spot, local
inputs, env secrets, logs read once the job ended) and has no catalog machines: it plans, renders
and submits unpriced.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudtrain.errors import UsageError
from cloudtrain.providers.base import Capabilities, CreateOutcome, JobRef, JobStatus, NativeRequest, Provider

__all__ = ["ToyProvider", "ToySettings"]


class ToySettings(BaseModel):
    """The ``toy:`` section of a spec or config file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str | None = Field(None, description="The directory the toy cloud keeps its jobs in.")
    queue: Literal["cpu", "gpu"] = Field("cpu", description="The queue jobs are sent to.")


class ToyProvider(Provider):
    name: ClassVar[str] = "toy"
    capabilities: ClassVar[Capabilities] = Capabilities()
    settings_model = ToySettings
    machines_from_catalog: ClassVar[bool] = False
    settings_examples: ClassVar[dict[str, str]] = {"root": "~/toy-cloud"}
    poll_seconds = 0.2
    retry_seconds = 0.05

    # -- plan time ------------------------------------------------------------------------------

    @staticmethod
    def _root(settings: dict[str, Any]) -> Path:
        return Path(settings["root"]).expanduser().resolve()

    def render(self, plan: Any) -> NativeRequest:
        spec = plan.spec
        root = self._root(plan.settings)
        job_dir = root / "jobs" / plan.job_name
        code_dir = root / "staging" / plan.job_name / "code"
        from cloudtrain.providers.bundle import ENTRY_SHIM, entry_environment

        env = {
            **entry_environment(plan),  # what to run and how, as every cloud job gets it (spec env included)
            "CLOUDTRAIN_RUN_DIR": str(job_dir),
            "CLOUDTRAIN_MODEL_DIR": str(job_dir / "model"),
            "CLOUDTRAIN_OUTPUT_DIR": str(job_dir / "output"),
            "CLOUDTRAIN_METRICS_FILE": str(job_dir / "metrics.jsonl"),
            "CLOUDTRAIN_INPUTS": json.dumps({name: item.uri for name, item in spec.inputs.items()}),
            "CLOUDTRAIN_OUTPUTS": json.dumps({name: str(job_dir / "output" / name) for name in spec.outputs}),
            "CLOUDTRAIN_HPS": json.dumps(spec.hyperparameters),
            "CLOUDTRAIN_NUM_NODES": "1",
            "TOY_QUEUE": plan.settings.get("queue", "cpu"),
            "PYTHONUNBUFFERED": "1",
        }
        payload = {
            "job": plan.job_name,
            "queue": plan.settings.get("queue", "cpu"),
            "submission_token": plan.submission_token,
            "source": str(spec.code),
            "job_dir": str(job_dir),
            "nodes": [{"argv": [sys.executable, ENTRY_SHIM], "env": env, "cwd": str(code_dir)}],
            "secret_env": {name: ref.env for name, ref in spec.secrets.items()},
            "grace_seconds": 5,
        }
        return NativeRequest(cloud=self.name, payload=payload)

    # -- submission -----------------------------------------------------------------------------

    def stage(self, plan: Any, request: NativeRequest) -> None:
        """Copy the code bundle's files to the staging directory (again on a retry: same files)."""
        from cloudtrain.providers.bundle import bundle_files

        code_dir = Path(request.payload["nodes"][0]["cwd"])
        for name, path in bundle_files(Path(request.payload["source"])).items():
            target = code_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    def create(self, plan: Any, request: NativeRequest) -> str:
        job_dir = Path(request.payload["job_dir"])
        job_dir.parent.mkdir(parents=True, exist_ok=True)
        aside = job_dir.parent / f".{job_dir.name}.{uuid.uuid4().hex[:8]}"
        for sub in ("logs", "model", "output"):
            (aside / sub).mkdir(parents=True)
        (aside / "job.json").write_text(json.dumps({"submission_token": request.payload["submission_token"],
                                                     "queue": request.payload["queue"]}))
        (aside / "request.json").write_text(json.dumps(request.payload))
        (aside / "status.json").write_text(json.dumps({"state": "PENDING", "job_id": plan.job_name}))
        try:
            os.rename(aside, job_dir)  # fails when the job exists: never two jobs under one name
        except OSError:
            shutil.rmtree(aside, ignore_errors=True)
            raise
        with open(job_dir / "logs" / "supervisor.log", "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "cloudtrain.providers.process", str(job_dir)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        (job_dir / "supervisor.pid").write_text(str(process.pid))
        return plan.job_name

    def classify_create_error(self, error: Exception) -> CreateOutcome:
        if isinstance(error, OSError) and error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return CreateOutcome.ALREADY_EXISTS
        return CreateOutcome.FATAL

    def find_submission(self, plan: Any) -> str | None:
        job_file = self._root(plan.settings) / "jobs" / plan.job_name / "job.json"
        try:
            token = json.loads(job_file.read_text()).get("submission_token")
        except (OSError, ValueError):
            return None
        return plan.job_name if token == plan.submission_token else None

    def ref(self, plan: Any, native_id: str) -> JobRef:
        return JobRef(job_id=plan.job_name, cloud=self.name, native_id=native_id,
                      details={"submission_token": plan.submission_token,
                               "job_dir": str(self._root(plan.settings) / "jobs" / plan.job_name)})

    # -- following ------------------------------------------------------------------------------

    @staticmethod
    def _job_dir(ref: JobRef) -> Path:
        job_dir = ref.details.get("job_dir")
        if not job_dir or not Path(job_dir).is_dir():
            raise UsageError(f"the toy cloud has no job {ref.job_id} ({job_dir or 'never created'})",
                             f"`cloudtrain submit SPEC --resume {ref.job_id}` sends an interrupted submission again")
        return Path(job_dir)

    def status(self, ref: JobRef) -> JobStatus:
        from cloudtrain.providers.run_directory import run_status

        return run_status(self._job_dir(ref), model_uri=lambda path: path.as_uri())

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        from cloudtrain.providers.run_directory import read_new_lines

        return read_new_lines(self._job_dir(ref) / "logs" / "job.log", cursor, final)

    def cancel(self, ref: JobRef) -> None:
        from cloudtrain.providers.run_directory import cancel_run

        cancel_run(self._job_dir(ref))

def job_count(root: Path) -> int:
    """How many jobs the toy cloud under ``root`` holds (what a conformance suite counts)."""
    jobs = Path(root) / "jobs"
    return sum(1 for p in jobs.iterdir() if not p.name.startswith(".")) if jobs.is_dir() else 0
