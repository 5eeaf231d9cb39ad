"""One emulated Vertex AI custom job, from CreateCustomJob to a terminal state.

States: JOB_STATE_QUEUED (created) -> JOB_STATE_PENDING (the Cloud Storage FUSE mount is prepared)
-> JOB_STATE_RUNNING (one process per replica) -> JOB_STATE_SUCCEEDED / JOB_STATE_FAILED, or
JOB_STATE_CANCELLING -> JOB_STATE_CANCELLED after CancelCustomJob. Exceeding ``scheduling.timeout``
fails the job, as Vertex does.

The ``/gcs/<bucket>`` mount is emulated by a directory: before the run, every ``gs://`` location
the job refers to (its base output directory, ``gs://`` values of its env, command and args) is
copied from the GCS emulator into ``<job root>/gcs/<bucket>/...``, and ``CLOUDTRAIN_GCS_MOUNT``
points there (the rendered command reads ``${CLOUDTRAIN_GCS_MOUNT:-/gcs}``). While the job runs,
files written under the base output directory (model, checkpoints, TensorBoard logs, metrics) are
copied back as they settle, and all of them once more at the end, as gcsfuse would write them.

Each replica (``workerpool0-0``, ``workerpool1-0``...) is one process running the container's
``command`` + ``args`` with this interpreter's directory first on ``PATH`` (no image is pulled),
with what Vertex sets: the container env, ``AIP_MODEL_DIR`` / ``AIP_CHECKPOINT_DIR`` /
``AIP_TENSORBOARD_LOG_DIR``, ``CLUSTER_SPEC``, ``CLOUD_ML_JOB_ID``, ``CLOUD_ML_PROJECT_ID`` and,
as in the PyTorch images, ``MASTER_ADDR`` / ``MASTER_PORT`` / ``WORLD_SIZE`` / ``RANK`` (master on
127.0.0.1 at a free port). Runtime-contract variables of the emulator's own process are unset.

The log (every replica's output, prefixed ``[workerpool1-0]`` when there are several) is written
to ``<base output directory>/cloudtrain-logs/job.log`` while the job runs, and completely before the
job reaches its terminal state. With a ``preempt`` fault pending, a SPOT job is interrupted once
after its first checkpoint settles and its replicas start again on the same mount.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cloudtrain.emulators.common import DirectoryMirror, Faults, NodeProcesses, without_inherited
from cloudtrain.providers.process import NodeCommand, free_port
from cloudtrain.providers.vertex_job import LOG_OBJECT

TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
_GCS_URI = re.compile(r"gs://[a-z0-9][a-z0-9._-]*(?:/[^\s\"',;]*)?")
# Files the job does not write: not copied back to the bucket.
_NOT_OUTPUTS = ("staging/", "cloudtrain-logs/")


def now() -> datetime:
    return datetime.now(timezone.utc)


def split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, path = uri[len("gs://"):].partition("/")
    return bucket, path


@dataclass
class JobServices:
    """What a job needs from its emulator: a storage client factory, faults, timings."""

    storage: Any  # () -> google.cloud.storage.Client
    faults: Faults
    grace_seconds: float = 10.0
    poll_seconds: float = 0.1


class CustomJobRun:
    """Runs one created job in a thread, keeping ``job`` (an ``aiplatform_v1.CustomJob``) up to date.
    ``lock`` guards ``job``: the service serializes it under the same lock."""

    def __init__(self, job: Any, root: Path, services: JobServices, lock: threading.Lock) -> None:
        self.job, self.root, self.services, self.lock = job, root, services, lock
        self.name = job.name
        self.id = job.name.rsplit("/", 1)[-1]
        self.project = job.name.split("/")[1]
        self.mount = root / "gcs"
        self.interruptions = 0
        self._cancel_requested = False
        self._timed_out = False
        self._interrupting = False
        self._nodes: NodeProcesses | None = None
        self._log_lines: list[str] = []
        self._log_uploaded = 0
        self._log_lock = threading.Lock()
        self._tails: dict[int, list[str]] = {}
        self._storage: Any = None
        self.thread = threading.Thread(target=self.run, name=f"vertex-job-{self.id}", daemon=True)

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self.lock:
            return self.job.state.name

    def _set_state(self, state: str, error: tuple[int, str] | None = None) -> None:
        from google.cloud import aiplatform_v1

        with self.lock:
            if self.job.state.name in TERMINAL:
                return
            if self._cancel_requested and state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                return
            stamp = now()
            self.job.state = aiplatform_v1.JobState[state]
            self.job.update_time = stamp
            if state == "JOB_STATE_RUNNING" and not self.job.start_time:
                self.job.start_time = stamp
            if state in TERMINAL:
                self.job.end_time = stamp
            if error:
                self.job.error = {"code": error[0], "message": error[1]}

    def request_cancel(self) -> bool:
        """CancelCustomJob: False when the job already ended."""
        with self.lock:
            if self.job.state.name in TERMINAL:
                return False
            first = not self._cancel_requested
            self._cancel_requested = True
            nodes = self._nodes
        if first:
            self._set_state("JOB_STATE_CANCELLING")
        if nodes is not None:
            nodes.cancel()
        return True

    # -- storage and logs ---------------------------------------------------------------------------

    def storage(self) -> Any:
        if self._storage is None:
            self._storage = self.services.storage()
        return self._storage

    @property
    def base_output(self) -> str | None:
        uri = self.job.job_spec.base_output_directory.output_uri_prefix
        return uri.rstrip("/") if uri else None

    def log(self, line: str) -> None:
        with self._log_lock:
            self._log_lines.append(line)

    def upload_log(self) -> None:
        if not self.base_output:
            return
        with self._log_lock:
            count = len(self._log_lines)
            if count == self._log_uploaded:
                return
            text = "".join(line + "\n" for line in self._log_lines[:count])
        bucket, path = split_gcs(f"{self.base_output}/{LOG_OBJECT}")
        self.storage().bucket(bucket).blob(path).upload_from_string(text, content_type="text/plain")
        self._log_uploaded = count

    def _download(self, uri: str) -> int:
        bucket, prefix = split_gcs(uri)
        client = self.storage()
        if client.lookup_bucket(bucket) is None:
            self.log(f"cloudtrain-emulator: the bucket {bucket} does not exist in the emulator; /gcs/{bucket} is empty")
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

    def _mount(self) -> None:
        """Copy every gs:// location the job refers to into the mount directory."""
        uris = set()
        if self.base_output:
            uris.add(self.base_output + "/")
        for pool in self.job.job_spec.worker_pool_specs:
            container = pool.container_spec
            texts = [e.value for e in container.env] + list(container.command) + list(container.args)
            for text in texts:
                uris.update(_GCS_URI.findall(text))
        (self.mount).mkdir(parents=True, exist_ok=True)
        for uri in sorted(uris):
            if not any(uri != other and uri.startswith(other.rstrip("/") + "/") for other in uris):
                self._download(uri)

    def _upload_output(self, relative: str, path: Path) -> None:
        if relative.startswith(_NOT_OUTPUTS) or self.base_output is None:
            return
        bucket, prefix = split_gcs(self.base_output)
        self.storage().bucket(bucket).blob(f"{prefix}/{relative}" if prefix else relative).upload_from_filename(str(path))

    # -- the run ------------------------------------------------------------------------------

    def replicas(self) -> list[tuple[str, int, Any]]:
        """(pool name, index, pool spec) of every replica, primary first."""
        out = []
        for number, pool in enumerate(self.job.job_spec.worker_pool_specs):
            out += [(f"workerpool{number}", index, pool) for index in range(int(pool.replica_count or 0))]
        return out

    def _cluster_spec(self, pool: str, index: int) -> str:
        cluster = {f"workerpool{n}": [f"workerpool{n}-{i}:2222" for i in range(int(p.replica_count or 0))]
                   for n, p in enumerate(self.job.job_spec.worker_pool_specs) if p.replica_count}
        from google.cloud import aiplatform_v1

        return json.dumps({"cluster": cluster, "environment": "cloud", "task": {"type": pool, "index": index, "trial": ""},
                           "job": aiplatform_v1.CustomJobSpec.to_json(self.job.job_spec, indent=None)})

    def commands(self, master_port: int) -> list[NodeCommand]:
        replicas = self.replicas()
        commands = []
        for rank, (pool, index, spec) in enumerate(replicas):
            container = spec.container_spec
            argv = list(container.command) + list(container.args)
            if not argv:
                raise JobFailure(f"{pool}: the emulator runs the container's command; containerSpec.command is required "
                                 "(images are not pulled, so their entrypoint is unknown)")
            replica_dir = self.root / "replicas" / f"{pool}-{index}"
            (replica_dir / "tmp").mkdir(parents=True, exist_ok=True)
            env = {e.name: e.value for e in container.env}
            if self.base_output:
                env.update(AIP_MODEL_DIR=f"{self.base_output}/model/", AIP_CHECKPOINT_DIR=f"{self.base_output}/checkpoints/",
                           AIP_TENSORBOARD_LOG_DIR=f"{self.base_output}/logs/")
            env.update({
                "CLUSTER_SPEC": self._cluster_spec(pool, index), "CLOUD_ML_JOB_ID": self.id, "CLOUD_ML_PROJECT_ID": self.project,
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port), "WORLD_SIZE": str(len(replicas)), "RANK": str(rank),
                "CLOUDTRAIN_GCS_MOUNT": str(self.mount), "TMPDIR": str(replica_dir / "tmp"), "PYTHONUNBUFFERED": "1",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            })
            commands.append(NodeCommand(argv=without_inherited(argv, env), env=env, cwd=str(replica_dir)))
        return commands

    def run(self) -> None:
        try:
            self.log("Waiting for job to be provisioned.")
            self._set_state("JOB_STATE_PENDING")
            self._mount()
            outcome = "cancelled"
            while not self._cancel_requested:
                self._set_state("JOB_STATE_RUNNING")
                outcome = self._run_once()
                if outcome != "interrupted":
                    break
                self.log("cloudtrain-emulator: the job's replicas are restarting on new SPOT capacity")
            self._finish(outcome)
        except JobFailure as error:
            self._end_failed(str(error))
        except Exception as error:  # an emulator bug: show it where the user looks
            for line in traceback.format_exc().splitlines():
                self.log(f"cloudtrain-emulator internal error: {line}")
            self._end_failed(f"Internal error in the emulator: {type(error).__name__}: {error}", code=13)

    def _end_failed(self, message: str, code: int = 3) -> None:
        try:
            self.upload_log()
        finally:
            self._set_state("JOB_STATE_FAILED", error=(code, message))

    def _run_once(self) -> str:
        replicas = self.replicas()
        commands = self.commands(free_port())
        names = [f"{pool}-{index}" for pool, index, _ in replicas]
        self._tails = {i: [] for i in range(len(commands))}
        nodes = NodeProcesses(self.root / f"run-{self.interruptions}", commands, self.services.grace_seconds,
                              lambda node, text: self._on_line(names, node, text))
        mirror = DirectoryMirror([self.mount / Path(*split_gcs(self.base_output))] if self.base_output else [], self._upload_output)
        with self.lock:
            self._nodes, cancel = nodes, self._cancel_requested
        if cancel:
            nodes.cancel()
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(nodes, mirror, finished), daemon=True)
        watcher.start()
        timeout = self.job.job_spec.scheduling.timeout
        seconds = timeout.total_seconds() if timeout else 0
        timer = threading.Timer(seconds, self._time_out, args=(nodes,)) if seconds > 0 else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            result = nodes.run()
        finally:
            finished.set()
            watcher.join()
            if timer:
                timer.cancel()
            with self.lock:
                self._nodes = None
        mirror.sync(final=True)
        if self._interrupting:
            self._interrupting = False
            return "interrupted"
        if self._cancel_requested:
            return "cancelled"
        if self._timed_out:
            return "timeout"
        if result.get("state") == "SUCCEEDED":
            return "succeeded"
        self._failure = self._failure_message(names, result.get("exit_codes") or [])
        return "failed"

    def _on_line(self, names: list[str], node: int, text: str) -> None:
        self._tails.setdefault(node, []).append(text)
        del self._tails[node][:-40]
        self.log(f"[{names[node]}] {text}" if len(names) > 1 else text)

    def _watch(self, nodes: NodeProcesses, mirror: DirectoryMirror, finished: threading.Event) -> None:
        while not finished.wait(self.services.poll_seconds):
            try:
                self.upload_log()
                uploaded = mirror.sync()
            except Exception as error:  # storage hiccup: try again on the next round
                self.log(f"cloudtrain-emulator: syncing the GCS mount failed: {error}")
                continue
            spot = self.job.job_spec.scheduling.strategy.name == "SPOT"
            if (spot and any(u.startswith("checkpoints/") for u in uploaded) and not self.interruptions
                    and not self._cancel_requested and self.services.faults.take_preemption(self.name)):
                self.interruptions += 1
                self._interrupting = True
                self.log("cloudtrain-emulator: SPOT capacity reclaimed: the job's replicas are preempted")
                nodes.cancel()
                return

    def _time_out(self, nodes: NodeProcesses) -> None:
        self._timed_out = True
        nodes.cancel()

    def _failure_message(self, names: list[str], codes: list[int | None]) -> str:
        failed = [i for i, c in enumerate(codes) if c not in (0, None)]
        own = [i for i in failed if (codes[i] or 0) > 0] or failed or [0]  # the others were ended because one failed
        node = own[0]
        tail = [l for l in self._tails.get(node, []) if l.strip()]
        line = next((l for l in reversed(tail) if "Error" in l or "Exception" in l), tail[-1] if tail else "")
        code = codes[node] if node < len(codes) else None
        return (f"The replica {names[node]} exited with a non-zero status of {code}. Termination reason: Error. "
                f"Last error: {line.strip() or 'none logged'}")

    def _finish(self, outcome: str) -> None:
        if outcome == "succeeded":
            self.log("Job completed successfully.")
        self.upload_log()
        if outcome == "succeeded":
            self._set_state("JOB_STATE_SUCCEEDED")
        elif outcome == "cancelled":
            with self.lock:
                self._cancel_requested = True
            self._set_state("JOB_STATE_CANCELLED", error=(1, "CANCELED"))
        elif outcome == "timeout":
            self._set_state("JOB_STATE_FAILED", error=(4, "Job exceeded its timeout (scheduling.timeout)."))
        else:
            self._set_state("JOB_STATE_FAILED", error=(3, self._failure))

    _failure = ""


class JobFailure(Exception):
    """A problem with the job's request or data: the job fails with this message."""




def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
