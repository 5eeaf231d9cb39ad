"""One emulated Vertex AI custom job, from CreateCustomJob to a terminal state.

States: JOB_STATE_QUEUED (created) -> JOB_STATE_PENDING (the Cloud Storage FUSE mount is prepared)
-> JOB_STATE_RUNNING (one process per replica) -> JOB_STATE_SUCCEEDED / JOB_STATE_FAILED, or
JOB_STATE_CANCELLING -> JOB_STATE_CANCELLED after CancelCustomJob. Exceeding ``scheduling.timeout``
fails the job, as Vertex does.

The ``/gcs/<bucket>`` mount is emulated by a directory: before the run, every Cloud Storage location
the job refers to (its base output directory, ``gs://`` or ``/gcs/`` values of its env, command and
args) is copied from the GCS emulator into ``<job root>/gcs/<bucket>/...``, which each replica sees
at ``/gcs`` where the machine allows (:mod:`cloudtrain.emulators.vertex_mount`), and ``CLOUDTRAIN_GCS_MOUNT``
points there (the rendered command reads ``${CLOUDTRAIN_GCS_MOUNT:-/gcs}``). While the job runs,
files written under the base output directory (model, checkpoints, TensorBoard logs, metrics) are
copied back as they settle, and all of them once more at the end, as gcsfuse would write them.

Each replica (``workerpool0-0``, ``workerpool1-0``...) is one process running the container's
``command`` + ``args`` with this interpreter's directory first on ``PATH`` (no image is pulled), or,
for a ``python_package_spec`` pool, ``python -m <python_module> <args>`` with the pool's packages
installed as :mod:`cloudtrain.emulators.vertex_packages` describes,
with what Vertex sets: the container env, ``AIP_MODEL_DIR`` / ``AIP_CHECKPOINT_DIR`` /
``AIP_TENSORBOARD_LOG_DIR``, ``CLUSTER_SPEC``, ``TF_CONFIG`` (pools 0-3 as chief, worker, ps, evaluator,
at 127.0.0.1 with a port per replica), ``CLOUD_ML_JOB_ID``, ``CLOUD_ML_PROJECT_ID`` and,
as in the PyTorch images, ``MASTER_ADDR`` / ``MASTER_PORT`` / ``WORLD_SIZE`` / ``RANK`` (master on
127.0.0.1 at a free port). As a Vertex replica reaches Google's services, it gets the variables
that send the Google SDKs to the emulator (``environment``: storage, the metadata server's
credentials, the proxy), so ``storage.Client()`` or ``aiplatform`` work inside the job unchanged.
Runtime-contract variables of the emulator's own process are unset.

Each output line becomes a Cloud Logging entry as it is written (:mod:`cloudtrain.emulators.vertex_logging`),
as on Vertex AI: resource ``ml_job`` with labels ``job_id`` / ``project_id`` / ``task_name``
(``workerpool0-0``...), log ``projects/P/logs/workerpool0-0``; the service's own messages ("Waiting
for job to be provisioned.", "Job completed successfully.", the emulator's notes) have
``task_name`` ``service`` and log ``ml.googleapis.com%2F<job id>``. Every entry of a job exists
before the job reaches its terminal state. With a ``preempt`` fault pending, a SPOT job is
interrupted once after its first checkpoint settles and its replicas start again on the same mount.
The run loop itself is :class:`cloudtrain.emulators.job_runner.EmulatedJob`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from cloudtrain.emulators.common import without_inherited
from cloudtrain.emulators.job_runner import EmulatedJob, Failure, JobSettings, JobSetupError, Phase
from cloudtrain.emulators.vertex_logging import LogEntries
from cloudtrain.emulators.vertex_mount import unavailable_reason, with_gcs_mount
from cloudtrain.emulators.vertex_packages import install_packages, missing_requirements, split_gcs
from cloudtrain.providers.process import NodeCommand, free_port

TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
# A path ends at whitespace, a quote or a separator a shell or a flag list puts after it.
_PATH_CHARACTERS = r"[^\s\"',;()`|&<>]*"
_GCS_URI = re.compile(r"gs://[a-z0-9][a-z0-9._-]*(?:/" + _PATH_CHARACTERS + ")?")
# The same location written as its Cloud Storage FUSE path (/gcs/BUCKET/PATH).
_GCS_PATH = re.compile(r"(?<![\w/.-])/gcs/([a-z0-9][a-z0-9._-]*(?:/" + _PATH_CHARACTERS + ")?)")
# Files the job does not write: not copied back to the bucket.
_NOT_OUTPUTS = ("staging/",)
#: Phase -> (JobState, error (google.rpc code, message) or None); phases without a state of their own are absent.
STATES: dict[Phase, tuple[str, tuple[int, str] | None]] = {
    Phase.PREPARING: ("JOB_STATE_PENDING", None),
    Phase.RUNNING: ("JOB_STATE_RUNNING", None),
    Phase.CANCELLING: ("JOB_STATE_CANCELLING", None),
    Phase.SUCCEEDED: ("JOB_STATE_SUCCEEDED", None),
    Phase.FAILED: ("JOB_STATE_FAILED", None),
    Phase.CANCELLED: ("JOB_STATE_CANCELLED", (1, "CANCELED")),
    Phase.TIMED_OUT: ("JOB_STATE_FAILED", (4, "Job exceeded its timeout (scheduling.timeout).")),
}
#: Notes in the job's log for phases Vertex shows only there.
_NOTES = {Phase.PREPARING: "Waiting for job to be provisioned.", Phase.SUCCEEDED: "Job completed successfully.",
          Phase.RESTARTING: "cloudtrain-emulator: the job's replicas are restarting on new SPOT capacity"}


def now() -> datetime:
    return datetime.now(timezone.utc)


class CustomJobRun(EmulatedJob):
    """One created job, keeping ``job`` (an ``aiplatform_v1.CustomJob``) up to date. ``lock`` (the
    service's re-entrant lock) guards ``job``: the service serializes it under the same lock.
    ``storage``: a ``google.cloud.storage.Client`` factory; ``logs``: where log entries go."""

    finalized_outcomes = ()  # Vertex shows no state between RUNNING and the end
    preemption_notice = "cloudtrain-emulator: SPOT capacity reclaimed: the job's replicas are preempted"

    def __init__(self, job: Any, root: Path, storage: Callable[[], Any], logs: LogEntries, settings: JobSettings,
                 lock: Any, environment: dict[str, str] | None = None) -> None:
        super().__init__(job.name, root, settings, lock)
        self.job, self.logs = job, logs
        self.environment = dict(environment or {})
        self.id = job.name.rsplit("/", 1)[-1]
        self.project = job.name.split("/")[1]
        self.mount = root / "gcs"
        self._storage_factory = storage
        self._storage: Any = None
        self._names: list[str] = []

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self.lock:
            return self.job.state.name

    def record_state(self, phase: Phase, failure: Failure | None) -> None:
        from google.cloud import aiplatform_v1

        if phase in _NOTES:
            self.note(_NOTES[phase])
        if phase not in STATES:
            return
        state, error = STATES[phase]
        if failure is not None:
            error = (13, f"Internal error in the emulator: {failure.message}") if failure.kind == "internal" else (3, failure.message)
        stamp = now()
        self.job.state = aiplatform_v1.JobState[state]
        self.job.update_time = stamp
        if state == "JOB_STATE_RUNNING" and not self.job.start_time:
            self.job.start_time = stamp
        if phase.is_terminal:
            self.job.end_time = stamp
        if error:
            self.job.error = {"code": error[0], "message": error[1]}

    # -- storage and logs ---------------------------------------------------------------------------

    def storage(self) -> Any:
        if self._storage is None:
            self._storage = self._storage_factory()
        return self._storage

    @property
    def base_output(self) -> str | None:
        uri = self.job.job_spec.base_output_directory.output_uri_prefix
        return uri.rstrip("/") if uri else None

    def write_line(self, node: int, text: str) -> None:
        self.logs.write(self.project, self.id, self._names[node] if node < len(self._names) else "workerpool0-0", text)

    def note(self, text: str) -> None:
        self.logs.write(self.project, self.id, "service", text)

    def _download(self, uri: str) -> int:
        bucket, prefix = split_gcs(uri)
        client = self.storage()
        if client.lookup_bucket(bucket) is None:
            self.note(f"cloudtrain-emulator: the bucket {bucket} does not exist in the emulator; /gcs/{bucket} is empty")
            return 0
        count = 0
        for blob in client.list_blobs(bucket, prefix=prefix):
            if blob.name.endswith("/"):
                continue
            target = self.mount / bucket / blob.name
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            count += 1
        return count

    def prepare(self, restart: bool) -> None:
        """Copy every gs:// location the job refers to into the mount directory (once: a restarted
        job's replicas find the same mount)."""
        if restart:
            return
        uris = set()
        if self.base_output:
            uris.add(self.base_output + "/")
        for pool in self.job.job_spec.worker_pool_specs:
            container, package = pool.container_spec, pool.python_package_spec
            texts = ([e.value for e in container.env] + list(container.command) + list(container.args)
                     + [e.value for e in package.env] + list(package.args))
            for text in texts:
                uris.update(_GCS_URI.findall(text))
                uris.update(f"gs://{path}" for path in _GCS_PATH.findall(text))
        self.mount.mkdir(parents=True, exist_ok=True)
        if unavailable_reason() is not None:
            self.note(f"cloudtrain-emulator: /gcs is not mounted for the replicas: {unavailable_reason()}; "
                      "CLOUDTRAIN_GCS_MOUNT holds the same files")
        for uri in sorted(uris):
            if not any(uri != other and uri.startswith(other.rstrip("/") + "/") for other in uris):
                self._download(uri)
        for number, pool in enumerate(self.job.job_spec.worker_pool_specs):
            if pool.python_package_spec.python_module and int(pool.replica_count or 0):
                requirements = install_packages(list(pool.python_package_spec.package_uris), self._packages(number),
                                                self.storage(), self.note)
                missing = missing_requirements(requirements)
                if missing:
                    self.note("cloudtrain-emulator: the package's dependencies are not installed (offline) and this "
                              f"environment lacks: {', '.join(missing)}")

    def _packages(self, pool_number: int) -> Path:
        return self.root / "packages" / f"workerpool{pool_number}"

    def mirrored_directories(self) -> list[Path]:
        """The base output directory in the mount: model, checkpoints, TensorBoard logs."""
        return [self.mount / Path(*split_gcs(self.base_output))] if self.base_output else []

    def upload_mirrored(self, relative: str, path: Path) -> None:
        if relative.startswith(_NOT_OUTPUTS) or self.base_output is None:
            return
        bucket, prefix = split_gcs(self.base_output)
        self.storage().bucket(bucket).blob(f"{prefix}/{relative}" if prefix else relative).upload_from_filename(str(path))

    def is_checkpoint(self, relative: str) -> bool:
        return relative.startswith("checkpoints/")

    def preemptible(self) -> bool:
        return self.job.job_spec.scheduling.strategy.name == "SPOT"

    def max_runtime_seconds(self) -> float | None:
        timeout = self.job.job_spec.scheduling.timeout
        return timeout.total_seconds() if timeout and timeout.total_seconds() > 0 else None

    # -- the replicas -------------------------------------------------------------------------

    def replicas(self) -> list[tuple[str, int, Any]]:
        """(pool name, index, pool spec) of every replica, primary first."""
        out = []
        for number, pool in enumerate(self.job.job_spec.worker_pool_specs):
            out += [(f"workerpool{number}", index, pool) for index in range(int(pool.replica_count or 0))]
        return out

    def _cluster_spec(self, pool: str, index: int) -> str:
        from google.cloud import aiplatform_v1

        cluster = {f"workerpool{n}": [f"workerpool{n}-{i}:2222" for i in range(int(p.replica_count or 0))]
                   for n, p in enumerate(self.job.job_spec.worker_pool_specs) if p.replica_count}
        return json.dumps({"cluster": cluster, "environment": "cloud", "task": {"type": pool, "index": index, "trial": ""},
                           "job": aiplatform_v1.CustomJobSpec.to_json(self.job.job_spec, indent=None)})

    def node_commands(self) -> list[NodeCommand]:
        replicas = self.replicas()
        self._names = [f"{pool}-{index}" for pool, index, _ in replicas]
        master_port = free_port()
        commands = []
        # TF_CONFIG as Vertex sets it: pool 0 chief, 1 worker, 2 ps, 3 evaluator; 127.0.0.1 with a port per replica
        task_types = ("chief", "worker", "ps", "evaluator")
        tf_cluster: dict[str, list[str]] = {}
        for pool, index, _ in replicas:
            tf_cluster.setdefault(task_types[int(pool[len("workerpool"):])], []).append(f"127.0.0.1:{free_port()}")
        for rank, (pool, index, spec) in enumerate(replicas):
            container, package = spec.container_spec, spec.python_package_spec
            if package.python_module:
                argv = ["python", "-m", package.python_module, *package.args]
                env = {e.name: e.value for e in package.env}
                installed = str(self._packages(int(pool[len("workerpool"):])))
                env["PYTHONPATH"] = os.pathsep.join([installed, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else installed
            else:
                if not container.command:  # args alone (a tuning trial always has some) would go to the image's entrypoint
                    raise JobSetupError(f"{pool}: the emulator runs the container's command; containerSpec.command is required "
                                        f"(images are not pulled, so the entrypoint of {container.image_uri or 'the image'} is unknown)")
                argv = list(container.command) + list(container.args)
                env = {e.name: e.value for e in container.env}
            env = {**self.environment, **env}  # what the machine provides (storage, metadata server), then the job's own
            replica_dir = self.root / "replicas" / f"{pool}-{index}"
            (replica_dir / "tmp").mkdir(parents=True, exist_ok=True)
            env.setdefault("CLOUDSDK_CONFIG", str(replica_dir / "gcloud"))  # gcloud's own, as in a fresh container
            if self.base_output:
                env.update(AIP_MODEL_DIR=f"{self.base_output}/model/", AIP_CHECKPOINT_DIR=f"{self.base_output}/checkpoints/",
                           AIP_TENSORBOARD_LOG_DIR=f"{self.base_output}/logs/")
            env.update({
                "TF_CONFIG": json.dumps({"cluster": tf_cluster, "task": {"type": task_types[int(pool[len("workerpool"):])],
                                                                          "index": index, "trial": ""}, "environment": "cloud"}),
                "CLUSTER_SPEC": self._cluster_spec(pool, index), "CLOUD_ML_JOB_ID": self.id, "CLOUD_ML_PROJECT_ID": self.project,
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port), "WORLD_SIZE": str(len(replicas)), "RANK": str(rank),
                "CLOUDTRAIN_GCS_MOUNT": str(self.mount), "TMPDIR": str(replica_dir / "tmp"), "PYTHONUNBUFFERED": "1",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            })
            argv = without_inherited(argv, env)
            if unavailable_reason() is None:
                argv = with_gcs_mount(argv, self.mount)
            commands.append(NodeCommand(argv=argv, env=env, cwd=str(replica_dir)))
        return commands

    def failure_message(self, exit_codes: list[int | None], node: int) -> str:
        code = exit_codes[node] if node < len(exit_codes) else None
        return (f"The replica {self._names[node]} exited with a non-zero status of {code}. Termination reason: Error. "
                f"Last error: {self.last_error_line(node) or 'none logged'}")
