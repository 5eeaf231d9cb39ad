"""What Azure ML's compute does with a command job, emulated on this machine.

One run of a job moves through Azure ML's states: ``NotStarted`` (created) -> ``Queued`` ->
``Preparing`` (the code snapshot and the inputs are downloaded) -> ``Running`` -> ``Finalizing``
(outputs uploaded) -> ``Completed`` / ``Failed`` / ``Canceled`` (``CancelRequested`` in between when
a cancel arrives).

Layout under ``<root>/jobs/<job>/``: ``node-<i>/wd`` (each node's working directory: the code
snapshot, with ``./outputs`` that Azure ML uploads to the run's artifacts
``ExperimentRun/dcid.<job>/outputs/``), ``inputs/<name>`` (downloaded inputs), ``outputs/<name>``
(named outputs, uploaded at the end to their URI, by default
``azureml://datastores/workspaceblobstore/paths/azureml/<job>/<name>/``) and ``run/`` (the
supervisor's status and merged log). The command runs under ``bash -c`` with ``${{inputs.x}}`` and
``${{outputs.y}}`` replaced by those local paths and ``python`` resolving to this interpreter.

Processes: one per node, or ``process_count_per_instance`` per node for the PyTorch distribution;
for the MPI distribution one ``mpirun`` starting ``nodes x process_count_per_instance`` ranks on this
machine (root allowed, oversubscribed; they read ``OMPI_COMM_WORLD_*``); for the TensorFlow
distribution one process per worker and parameter-server task, each with a ``TF_CONFIG`` naming
every task at 127.0.0.1 (a port each) and its own task;
each with Azure ML's variables (``AZUREML_RUN_ID``, ``AZUREML_EXPERIMENT_NAME``,
``AZUREML_NODE_COUNT``, ``AZUREML_ARM_*``) and, when distributed, ``MASTER_ADDR`` (127.0.0.1),
``MASTER_PORT`` (a free port), ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and
``NODE_RANK``; in server mode also the compute's managed identity, proxy and CA bundle
(``AzureMLEmulator.job_environment``). Their output goes to ``user_logs/std_log.txt`` (``std_log_process_<rank>.txt`` when
there are several processes) in the run's log container, readable while the job runs.
``limits.timeout`` ends the job as Azure ML does (Failed). A job waits in ``Queued`` while the
emulator says it may not start yet (``AzureMLEmulator(queue_until_followed=...)``), as on a
cluster still allocating its nodes.
The job's environment (curated or custom image / conda file) is recorded, not built: the command
runs with the emulator's Python. Runtime-contract variables of the
emulator's own process (``CLOUDTRAIN_*``, ``AZUREML_*``, ``RANK``...) are unset for the job.
The run loop itself is :class:`cloudtrain.emulators.job_runner.EmulatedJob`.

Spot (low priority) jobs: a job whose ``queueSettings.jobTier`` is ``Spot`` runs on capacity that a
``preempt`` fault reclaims once, after its first checkpoint settles: a file in a named output
mounted read-write (``rw_mount``, Azure ML's default output mode) or under ``./outputs/checkpoints``.
Azure ML then requeues the job and starts it again on a fresh node, under the same run. What the
restarted job finds is what Azure ML keeps: a read-write-mounted output is storage, so its files
(written through to storage while the job runs) are there again; the node's local disk is gone, so the
working directory is a fresh code snapshot, whose ``./outputs`` holds again the files of the run's
``./outputs`` that reached its artifacts before the preemption (they are uploaded as they settle:
a file still being written when the node went is not there), so a job resumes from checkpoints in
its default ``./outputs/checkpoints`` as from a ``checkpoint.uri`` output (a mounted named output);
an ``upload``-mode output loses what it held. Run history shows the interruption as Azure ML does: the run goes back to
``Queued`` then ``Preparing`` before ``Running`` again, and the run's details carry a warning
saying the job was preempted and restarted; the job's log gets the emulator's note and the
restarted attempt's lines after the first attempt's.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from cloudtrain.emulators.common import iso_seconds, without_inherited
from cloudtrain.emulators.job_runner import EmulatedJob, Failure, JobSettings, JobSetupError, Phase
from cloudtrain.providers.process import NodeCommand, failure_summary, free_port

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: Phase -> run status (a preempted job is requeued, then prepared again on a fresh node).
STATUSES = {Phase.QUEUED: "Queued", Phase.PREPARING: "Preparing", Phase.RUNNING: "Running", Phase.CANCELLING: "CancelRequested",
            Phase.INTERRUPTED: "Queued", Phase.RESTARTING: "Preparing",
            Phase.FINALIZING: "Finalizing", Phase.SUCCEEDED: "Completed", Phase.FAILED: "Failed", Phase.CANCELLED: "Canceled",
            Phase.TIMED_OUT: "Failed"}
#: The warning run history shows on a run whose low-priority node was preempted.
PREEMPTION_WARNING = {"source": "Compute", "message": "The job's low priority node was preempted; the job was requeued and "
                                                     "restarted on a new node"}


class JobRun(EmulatedJob):
    """One Azure ML command job running on this machine (see the module docstring)."""

    def __init__(self, service: "AzureMLService", root: Path, document: dict[str, Any], settings: JobSettings,
                 may_start: Callable[["JobRun"], bool] | None = None, platform_environment: dict[str, str] | None = None) -> None:
        super().__init__(document["name"], root / "jobs" / document["name"], settings)
        self.service, self.document = service, document
        self.may_start = may_start  # while it says no, the job waits in Queued (its cluster has no node for it yet)
        self.created = time.monotonic()
        self.platform_environment = dict(platform_environment or {})  # what the compute gives every process
        self.props: dict[str, Any] = document["properties"]
        self._commands: list[NodeCommand] = []
        self.log_names: list[str] = []
        self._handles: dict[int, TextIO] = {}
        self._checkpoint_files: set[str] = set()

    @property
    def log_prefix(self) -> str:
        return f"ExperimentRun/dcid.{self.name}"

    def run(self) -> None:
        if self.may_start is not None and not self.may_start(self):
            self.enter(Phase.QUEUED)
            while not self.cancel_requested and not self.may_start(self):
                time.sleep(0.05)
        super().run()

    # -- states and logs ---------------------------------------------------------------------------

    def record_state(self, phase: Phase, failure: Failure | None) -> None:
        from cloudtrain.emulators.azureml_answers import now_iso

        if phase not in STATUSES:
            return
        changes: dict[str, Any] = {"status": STATUSES[phase]}
        if phase is Phase.RUNNING:
            changes.update(startTimeUtc=now_iso(), logFiles={log: f"{self.log_prefix}/{log}" for log in self.log_names})
        if phase is Phase.INTERRUPTED:
            changes["warnings"] = [*self.service.runs[self.name].get("warnings", []), dict(PREEMPTION_WARNING)]
        if phase.is_terminal:
            changes["endTimeUtc"] = now_iso()
        if phase is Phase.TIMED_OUT:
            changes["error"] = {"code": "UserError", "message": f"the job ran past its limits.timeout "
                                                                f"({self.max_runtime_seconds():g} s) and was stopped"}
        elif failure is not None:
            internal = failure.kind == "internal"
            changes["error"] = {"code": "SystemError" if internal else "UserError",
                                "message": f"emulator error: {failure.message}" if internal else failure.message}
        self.service.set_run(self.name, **changes)

    def write_line(self, node: int, text: str) -> None:
        if not self.log_names:
            return
        index = node if node < len(self.log_names) else 0
        if index not in self._handles:
            self._handles[index] = open(self.service.blobs.path(self.service.container, f"{self.log_prefix}/{self.log_names[index]}"),
                                        "a", encoding="utf-8")
        self._handles[index].write(text + "\n")
        self._handles[index].flush()

    def attempt_ended(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def preemptible(self) -> bool:
        return str((self.props.get("queueSettings") or {}).get("jobTier") or "").lower() == "spot"

    def _mounted_outputs(self) -> list[str]:
        """Named outputs mounted read-write (Azure ML's default mode): their files are storage."""
        return [name for name, item in (self.props.get("outputs") or {}).items()
                if str(item.get("mode") or "ReadWriteMount").lower() in ("readwritemount", "rw_mount")]

    def mirrored_directories(self) -> list[Path]:
        """Read-write-mounted outputs write through to storage; ./outputs is uploaded to the run's
        artifacts as its files settle (and once more when the job finalizes)."""
        return [self.root / "outputs" / name for name in self._mounted_outputs()] + [self.root / "node-0" / "wd" / "outputs"]

    def upload_mirrored(self, relative: str, path: Path) -> None:
        outputs = self.root / "outputs"
        if outputs in path.parents:
            name = path.relative_to(outputs).parts[0]
            item = (self.props.get("outputs") or {}).get(name) or {}
            where = self.service.blob_for_uri(item.get("uri") or f"azureml://datastores/workspaceblobstore/paths/azureml/{self.name}/{name}/")
            if where is not None:
                self.service.blobs.put(where[0], f"{where[1].rstrip('/')}/{relative}", path.read_bytes())
            self._checkpoint_files.add(relative)
        else:  # ./outputs of the node: the run's artifacts
            self.service.blobs.put(self.service.container, f"{self.log_prefix}/outputs/{relative}", path.read_bytes())
            if relative.startswith("checkpoints/"):
                self._checkpoint_files.add(relative)

    def is_checkpoint(self, relative: str) -> bool:
        return relative in self._checkpoint_files

    def max_runtime_seconds(self) -> float | None:
        return iso_seconds((self.props.get("limits") or {}).get("timeout"))

    def failure_message(self, exit_codes: list[int | None], node: int) -> str:
        code = next((c for c in exit_codes if c not in (0, None)), exit_codes[0] if exit_codes else None)
        summary = failure_summary((self.run_directory or self.root / "run") / "logs" / "job.log", exit_codes)
        detail = summary.split(": ", 1)[1] if ": " in summary else summary
        return (f"Execution failed. User process 'bash' exited with status code {code}. Please check log file "
                f"'{self.log_names[0]}' for error details. Error: {detail}")

    # -- preparing: code, inputs, outputs, commands ---------------------------------------------------

    def _download(self, uri: str, target: Path, folder: bool) -> None:
        where = self.service.blob_for_uri(uri)
        if where is None:
            raise JobSetupError(f"the emulator cannot download {uri}: it reads azureml://datastores/workspaceblobstore/... "
                                f"and its own storage URLs")
        container, prefix = where
        if folder:
            prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
            names = self.service.blobs.list(container, prefix)
            if not names:
                raise JobSetupError(f"no data found at {uri}")
            for name in names:
                destination = target / name[len(prefix):]
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.service.blobs.path(container, name), destination)
        else:
            source = self.service.blobs.path(container, prefix)
            if not source.is_file():
                raise JobSetupError(f"no file found at {uri}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def _code_uri(self) -> str | None:
        code_id = self.props.get("codeId")
        if not code_id:
            return None
        match = re.search(r"/codes/([^/]+)/versions/([^/]+)$", code_id)
        with self.service.lock:
            doc = self.service.codes.get((match.group(1), match.group(2))) if match else None
        if doc is None:
            raise JobSetupError(f"code asset {code_id} does not exist")
        return doc["properties"].get("codeUri")

    def node_commands(self) -> list[NodeCommand]:
        return self._commands

    def prepare(self, restart: bool) -> None:
        """Download the code snapshot and inputs, lay out the outputs, build the commands and create
        the (empty) log files."""
        self._commands, self.log_names = self._prepare(restart)
        for log in self.log_names:
            path = self.service.blobs.path(self.service.container, f"{self.log_prefix}/{log}")
            path.parent.mkdir(parents=True, exist_ok=True)
            if not restart or not path.exists():  # a restarted run's lines follow the first attempt's
                path.write_bytes(b"")

    def _prepare(self, restart: bool = False) -> tuple[list[NodeCommand], list[str]]:
        props = self.props
        if not restart and self.root.exists():
            shutil.rmtree(self.root)
        if restart:  # a fresh node: its disk is new; read-write-mounted outputs are storage and stay
            mounted = set(self._mounted_outputs())
            lost = [*self.root.glob("node-*"), self.root / "inputs",
                    *(path for path in (self.root / "outputs").glob("*") if path.name not in mounted)]
            for path in lost:
                if path.is_dir():
                    shutil.rmtree(path)
        nodes = int((props.get("resources") or {}).get("instanceCount") or 1)
        distribution = props.get("distribution") or {}
        kind = distribution.get("distributionType")
        per_node = int(distribution.get("processCountPerInstance") or 1) if kind in ("PyTorch", "Mpi") else 1
        code_uri = self._code_uri()
        working_dirs = []
        for node in range(nodes):
            wd = self.root / f"node-{node}" / "wd"
            if code_uri:
                self._download(code_uri, wd, folder=True)
            (wd / "outputs").mkdir(parents=True, exist_ok=True)
            artifacts = f"{self.log_prefix}/outputs/"
            if restart and self.service.blobs.list(self.service.container, artifacts):  # ./outputs as uploaded before
                self._download(f"azureml://datastores/workspaceartifactstore/paths/{artifacts}", wd / "outputs", folder=True)
            working_dirs.append(wd)
        bindings: dict[tuple[str, str], str] = {}
        for name, item in (props.get("inputs") or {}).items():
            kind = item.get("jobInputType", "uri_folder")
            if kind == "literal":
                bindings[("inputs", name)] = str(item.get("value", ""))
                continue
            folder = kind != "uri_file"
            uri = item.get("uri") or ""
            target = self.root / "inputs" / name
            self._download(uri, target if folder else target / uri.split("?")[0].rstrip("/").rsplit("/", 1)[-1], folder)
            bindings[("inputs", name)] = str(target if folder else next(target.iterdir()))
        for name in (props.get("outputs") or {}):
            target = self.root / "outputs" / name
            target.mkdir(parents=True, exist_ok=True)
            bindings[("outputs", name)] = str(target)

        def substitute(match: re.Match[str]) -> str:
            key = (match.group(1), match.group(2))
            if key not in bindings:
                raise JobSetupError(f"the command uses ${{{{{key[0]}.{key[1]}}}}}, which the job does not declare")
            return shlex.quote(bindings[key])

        command = _BINDING.sub(substitute, props["command"])
        world = nodes * per_node
        port = free_port()
        commands = []
        shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
        if kind == "Mpi":  # Azure ML's mpirun starts every node's ranks; here all on this machine
            from cloudtrain.providers.distribution import MPI_ROOT_ENV, mpirun_local

            env = {**self._environment(nodes, False, 0, 0, per_node, 0, world, port), **MPI_ROOT_ENV}
            argv = [*mpirun_local(world), shell, "-c", command]
            return [NodeCommand(argv=without_inherited(argv, env), env=env, cwd=str(working_dirs[0]))], ["user_logs/std_log.txt"]
        if kind == "TensorFlow":  # one process per task, TF_CONFIG naming every task (127.0.0.1, a port each)
            from cloudtrain.providers.distribution import tf_config, tf_tasks

            tasks = tf_tasks(int(distribution.get("workerCount") or nodes), int(distribution.get("parameterServerCount") or 0))
            cluster: dict[str, list[str]] = {}
            for task_type, _ in tasks:
                cluster.setdefault(task_type, []).append(f"127.0.0.1:{free_port()}")
            for number, (task_type, index) in enumerate(tasks):
                node = number % nodes
                env = self._environment(nodes, False, node, 0, 1, number, len(tasks), port)
                env["TF_CONFIG"] = tf_config(cluster, task_type, index)
                commands.append(NodeCommand(argv=without_inherited([shell, "-c", command], env), env=env, cwd=str(working_dirs[node])))
            return commands, [f"user_logs/std_log_process_{n:0{len(str(len(tasks) - 1))}d}.txt" for n in range(len(tasks))]
        for node in range(nodes):
            for local in range(per_node):
                rank = node * per_node + local
                env = self._environment(nodes, world > 1 or bool(distribution), node, local, per_node, rank, world, port)
                shell = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"
                commands.append(NodeCommand(argv=without_inherited([shell, "-c", command], env), env=env, cwd=str(working_dirs[node])))
        logs = (["user_logs/std_log.txt"] if world == 1 else
                [f"user_logs/std_log_process_{rank:0{len(str(world - 1))}d}.txt" for rank in range(world)])
        return commands, logs

    def _environment(self, nodes: int, distributed: bool, node: int, local: int, per_node: int, rank: int, world: int,
                     port: int) -> dict[str, str]:
        props = self.props
        sub, rg, ws = self.service.runs[self.name]["workspace"]
        experiment = props.get("experimentName") or "Default"
        env = {**self.platform_environment, **{str(k): str(v) for k, v in (props.get("environmentVariables") or {}).items()}}
        env.update({
            "AZUREML_RUN_ID": self.name, "AZUREML_EXPERIMENT_NAME": experiment, "AZUREML_ARM_PROJECT_NAME": experiment,
            "AZUREML_ARM_SUBSCRIPTION": sub, "AZUREML_ARM_RESOURCEGROUP": rg, "AZUREML_ARM_WORKSPACE_NAME": ws,
            "AZUREML_NODE_COUNT": str(nodes), "AZUREML_CR_NODE_RANK": str(node), "AZUREML_PROCESS_NAME": f"rank_{rank}",
            "AZUREML_RUN_CONFIGURATION": "azureml-setup/mutated_run_configuration.json",
        })  # this Python first on PATH: the process runner's (providers.process.with_interpreter_on_path)
        if distributed:
            env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank),
                        "LOCAL_RANK": str(local), "LOCAL_WORLD_SIZE": str(per_node), "NODE_RANK": str(node)})
        return env

    # -- finalizing ------------------------------------------------------------------------------

    def _upload_dir(self, source: Path, container: str, prefix: str) -> None:
        if not source.is_dir():
            return
        for path in sorted(source.rglob("*")):
            if path.is_file():
                self.service.blobs.put(container, f"{prefix.rstrip('/')}/{path.relative_to(source).as_posix()}", path.read_bytes())

    def upload_outputs(self, outcome: Phase) -> None:
        container = self.service.container
        for node_dir in sorted(self.root.glob("node-*")):
            self._upload_dir(node_dir / "wd" / "outputs", container, f"{self.log_prefix}/outputs")
        for name, item in (self.props.get("outputs") or {}).items():
            uri = item.get("uri") or f"azureml://datastores/workspaceblobstore/paths/azureml/{self.name}/{name}/"
            where = self.service.blob_for_uri(uri)
            if where is not None:
                self._upload_dir(self.root / "outputs" / name, *where)
            self.service.set_output_uri(self.name, name, uri)
