"""The local executor: runs a job on this machine, in a subprocess, under the runtime contract.

Each job gets a run directory ``<runs_dir>/<job-id>/`` (default ``.cloudtrain/runs`` inside the
job's code directory; ``local.runs_dir`` in a config file or ``CLOUDTRAIN_RUNS_DIR`` moves it)
holding ``spec.json`` (the resolved spec), ``request.json`` (the command lines), ``logs/job.log``,
``metrics.jsonl``, ``model/``, ``output/``, ``checkpoints/`` and ``status.json``. A job runs in its
code directory (as ``python train.py`` there would); MLflow's default store goes to the run
directory (``MLFLOW_TRACKING_URI=sqlite:///<run dir>/mlflow.db``) unless the environment or the
spec's ``env`` sets ``MLFLOW_TRACKING_URI``, so a script that logs to MLflow leaves nothing in the code
(and MLflow's usage telemetry is off, ``MLFLOW_DISABLE_TELEMETRY``, unless either sets it);
``cloudml-hypertune`` reports (a Vertex AI script's) go to ``<run dir>/hypertune/output.metrics``
(``CLOUD_ML_HP_METRIC_FILE``), not a file every run shares. Both are read back as the run's metrics
(:mod:`cloudtrain.runtime.reports`), beside ``metrics.jsonl``.
The spec's ``metrics`` with a ``regex`` are found in the first node's output and recorded in
``metrics.jsonl`` beside what ``log_metric`` records, as a cloud reads them from its logs.

Local inputs are handed to the job by absolute path (``CLOUDTRAIN_INPUTS``); the executor never
writes into them. ``distribution: torchrun`` launches ``python -m torch.distributed.run`` (gloo
on CPU); ``resources.nodes > 1`` with torchrun runs one torchrun per simulated node, rendezvousing
on 127.0.0.1. ``deepspeed`` runs under torchrun the same way (:mod:`cloudtrain.providers.distribution`).
``mpi`` runs one ``mpirun`` for all the simulated nodes' ranks (``nodes x processes_per_node``, root
allowed, ``--oversubscribe``); the runtime context places rank ``r`` on node ``r // processes_per_node``.
A job still running at ``max_runtime`` is stopped (SIGTERM, the grace period, SIGKILL) and FAILED, as a cloud stops it.
``tensorflow`` runs one process per simulated node and one per parameter server, each with a
``TF_CONFIG`` whose tasks listen on 127.0.0.1 at ports chosen at submit time. Cloud-only features (``image:``, cloud storage inputs, cloud secret stores, spot) are
refused at plan time. Accelerator requests are not refused: the same spec runs here on whatever
the machine has (the scripts fall back to the CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudtrain.errors import SpecError, UnsupportedFeatureError, UsageError
from cloudtrain.providers.base import Capabilities, JobRef, JobStatus, NativeRequest, Provider

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

MASTER_PORT = "{master_port}"  # filled in at submit time; render stays pure


def default_runs_dir(code_dir: str | Path) -> Path:
    return Path(code_dir) / ".cloudtrain" / "runs"


def local_gpu_count() -> int:
    """GPUs visible to jobs on this machine (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``), without torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def contract_env(plan: "Plan", run_dir: Path) -> dict[str, str]:
    """The runtime contract's variables for a local run (see :mod:`cloudtrain.runtime.context`)."""
    spec = plan.spec
    env = {
        "CLOUDTRAIN_JOB_ID": plan.job_name,
        "CLOUDTRAIN_RUN_DIR": str(run_dir),
        "CLOUDTRAIN_MODEL_DIR": str(run_dir / "model"),
        "CLOUDTRAIN_OUTPUT_DIR": str(run_dir / "output"),
        "CLOUDTRAIN_METRICS_FILE": str(run_dir / "metrics.jsonl"),
        "CLOUDTRAIN_INPUTS": json.dumps({name: item.uri for name, item in spec.inputs.items()}),
        "CLOUDTRAIN_OUTPUTS": json.dumps({name: str(run_dir / "output" / name) for name in spec.outputs}),
        "CLOUDTRAIN_HPS": json.dumps(spec.hyperparameters),
        "CLOUDTRAIN_NUM_NODES": str(plan.nodes),
        "PYTHONUNBUFFERED": "1",
    }
    from cloudtrain.runtime.reports import HYPERTUNE_LOCAL, MLFLOW_LOCAL

    if "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_TRACKING_URI" not in spec.env:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{run_dir / MLFLOW_LOCAL}"  # MLflow's own default store, in the run (not the code)
    if "MLFLOW_DISABLE_TELEMETRY" not in os.environ and "MLFLOW_DISABLE_TELEMETRY" not in spec.env:
        # MLflow 3 sends usage telemetry from a thread of its own, which has been seen to hang a run
        # that calls mlflow.autolog() (until max_runtime); a job run here reports nothing about MLflow
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if "CLOUD_ML_HP_METRIC_FILE" not in os.environ and "CLOUD_ML_HP_METRIC_FILE" not in spec.env:
        env["CLOUD_ML_HP_METRIC_FILE"] = str(run_dir / HYPERTUNE_LOCAL)  # cloudml-hypertune's reports, per run
    from cloudtrain.providers.distribution import MPI_ROOT_ENV, distribution_environment

    env.update(distribution_environment(plan))
    if spec.distribution.type == "mpi":
        env.update(MPI_ROOT_ENV)
    if spec.checkpoint.enabled:
        env["CLOUDTRAIN_CHECKPOINT_DIR"] = str(run_dir / "checkpoints")
        if spec.checkpoint.every:
            env["CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS"] = str(int(spec.checkpoint.every.total_seconds()))
    return env


def placeholder_values(plan: "Plan", run_dir: Path) -> dict[str, str]:
    """The values of the ``${{...}}`` placeholders in a local run (what its context() will say)."""
    spec = plan.spec
    values = {"model_dir": str(run_dir / "model"), "output_dir": str(run_dir / "output")}
    if spec.checkpoint.enabled:
        values["checkpoint_dir"] = str(run_dir / "checkpoints")
    values.update({f"inputs.{name}": item.uri for name, item in spec.inputs.items()})
    values.update({f"outputs.{name}": str(run_dir / "output" / name) for name in spec.outputs})
    return values


def entry_argv(plan: "Plan", node_rank: int, run_dir: Path) -> list[str]:
    """The node's command line: the entrypoint (under torchrun when asked) with the rendered
    arguments (:mod:`cloudtrain.runtime.invocation`), after the spec's set-up commands."""
    from cloudtrain.runtime.invocation import render_args, resolve, spec_values

    spec = plan.spec
    values = placeholder_values(plan, run_dir)
    args = [resolve(arg, values) for arg in render_args(spec.args, spec.hyperparameters, spec.hyperparameters_as_args, plan.job_name)]
    python = spec.command is None and not (spec.entrypoint or "").endswith(".sh")
    if spec.command is not None:
        target = ["bash", "-c", resolve(spec.command, {**values, **spec_values(spec.hyperparameters, plan.job_name)}), "bash"]
    elif spec.module:
        target = ["-m", spec.module]
    elif python:
        target = [spec.entrypoint or ""]
    else:
        target = ["bash", spec.entrypoint or ""]
    kind = spec.distribution.type
    if kind == "mpi":
        from cloudtrain.providers.distribution import mpirun_local

        launcher = mpirun_local(plan.nodes * plan.processes_per_node, spec.distribution.mpi_options)
        argv = [*launcher, *([sys.executable] if python else []), *target, *args]
    elif kind not in ("torchrun", "deepspeed"):
        argv = [*([sys.executable] if python else []), *target, *args]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(plan.processes_per_node)]
        if plan.nodes == 1:
            launcher.append("--standalone")
        else:
            launcher += ["--nnodes", str(plan.nodes), "--node-rank", str(node_rank),
                         "--master-addr", "127.0.0.1", "--master-port", MASTER_PORT]
        if spec.module:
            launcher.append("--module")
        elif not python:
            launcher.append("--no-python")
        argv = [*launcher, *(target[1:] if spec.module else target), *args]
    if spec.setup:
        script = "set -e\n" + "\n".join(spec.setup) + '\nexec "$@"'
        argv = ["bash", "-c", script, "bash", *argv]
    return argv


def missing_requirements(code_dir: Path, requirements: str | None) -> tuple[str | None, list[str]]:
    """(the requirements file, the requirements it names that this environment lacks)."""
    import re
    from importlib import metadata

    name = requirements or "requirements.txt"
    path = code_dir / name
    if not path.is_file():
        return None, []
    missing = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # options (-r, -e, --index-url) are pip's business
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not match:
            continue
        try:
            metadata.version(match.group(0))
        except metadata.PackageNotFoundError:
            missing.append(line)
    return name, missing


class LocalSettings(BaseModel):
    """The ``local:`` section of a spec or config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    runs_dir: str | None = Field(None, description="Where run directories go; `.cloudtrain/runs` in the code directory if unset.")


class LocalProvider(Provider):
    """Runs jobs on this machine (see the module docstring)."""

    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=False, multi_node=True, checkpoints=True, log_streaming=True,
        container_images=False, input_schemes=("local",), secret_sources=("env",),
    )
    settings_model = LocalSettings
    poll_seconds = 0.2

    def check_settings(self, plan: "Plan") -> None:
        for name, ref in plan.spec.secrets.items():
            if ref.env and ref.env not in os.environ:
                raise SpecError(f"secrets.{name}: environment variable {ref.env} is not set",
                                f"export {ref.env}=... before running, or remove the secret from the spec")
        name, missing = missing_requirements(Path(plan.spec.code), plan.spec.requirements)
        if missing:
            raise SpecError(f"requirements: {name} names packages this environment lacks: {', '.join(missing)}",
                            f"install them first (pip install -r {name}); cloudtrain installs requirements on the clouds, "
                            "never on this machine")
        if plan.nodes > 1 and plan.spec.distribution.type == "none":
            raise UnsupportedFeatureError(
                "resources.nodes: several local nodes need distribution.type: torchrun, mpi, tensorflow or deepspeed",
                "set distribution: {type: torchrun} or resources.nodes: 1",
            )
        from cloudtrain.providers.distribution import check_distribution

        check_distribution(plan, "local")

    def adjust_plan(self, plan: "Plan") -> "Plan":
        """One worker per GPU of this machine under ``processes_per_node: auto``."""
        from dataclasses import replace

        from cloudtrain.plan import processes_per_node

        if plan.spec.distribution.processes_per_node == "auto":
            return replace(plan, processes_per_node=processes_per_node(plan.spec, local_gpu_count()))
        return plan

    def run_dir(self, plan: "Plan") -> Path:
        runs_dir = plan.settings.get("runs_dir")
        base = Path(runs_dir).expanduser().resolve() if runs_dir else default_runs_dir(plan.spec.code)
        return base / plan.job_name

    def render(self, plan: "Plan") -> NativeRequest:
        spec, run_dir = plan.spec, self.run_dir(plan)
        base_env = {**spec.env, **contract_env(plan, run_dir)}
        nodes = []
        if spec.distribution.type == "mpi":  # one mpirun starts every node's ranks
            nodes.append({"argv": entry_argv(plan, 0, run_dir), "env": base_env, "cwd": spec.code})
        elif spec.distribution.type == "tensorflow":
            from cloudtrain.providers.distribution import tf_config, tf_tasks

            tasks = tf_tasks(plan.nodes, spec.distribution.parameter_servers)
            cluster: dict[str, list[str]] = {}
            for number, (kind, _) in enumerate(tasks):
                cluster.setdefault(kind, []).append(f"127.0.0.1:{{tf_port_{number}}}")
            for kind, index in tasks:
                env = dict(base_env, TF_CONFIG=tf_config(cluster, kind, index))
                if kind == "worker":
                    env["NODE_RANK"] = str(index)
                nodes.append({"argv": entry_argv(plan, index, run_dir), "env": env, "cwd": spec.code})
        else:
            for rank in range(plan.nodes):
                env = dict(base_env, NODE_RANK=str(rank)) if plan.nodes > 1 else base_env
                nodes.append({"argv": entry_argv(plan, rank, run_dir), "env": env, "cwd": spec.code})
        from cloudtrain.runtime.context import read_context
        from cloudtrain.runtime.variables import missing_variables

        for node in nodes:  # what scripts written for a cloud read (SM_MODEL_DIR...), as the shim sets in cloud jobs
            node["env"] = {**node["env"], **missing_variables(read_context(node["env"]), node["env"])}
        from cloudtrain.runtime.reports import HYPERTUNE_LOCAL

        for index, node in enumerate(nodes[1:], start=1):  # each cloud machine has its own file; the first node's is read
            if node["env"].get("CLOUD_ML_HP_METRIC_FILE") == str(run_dir / HYPERTUNE_LOCAL):
                node["env"] = {**node["env"], "CLOUD_ML_HP_METRIC_FILE": str(run_dir / "hypertune" / f"node-{index}" / "output.metrics")}
        payload = {
            "job_id": plan.job_name,
            "run_dir": str(run_dir),
            "nodes": nodes,
            "secret_env": {name: ref.env for name, ref in spec.secrets.items()},
            # metrics a regex finds in the output, recorded in metrics.jsonl as a cloud reads them from the logs
            "metric_patterns": [{"name": m.name, "regex": m.regex} for m in spec.metrics if m.regex],
            "grace_seconds": 10,
            "max_runtime_seconds": plan.max_runtime_seconds,  # the job is stopped then, as on a cloud
        }
        return NativeRequest(cloud="local", payload=payload)

    # -- submission ---------------------------------------------------------------------------

    def prepare(self, plan: "Plan", request: NativeRequest) -> Path:
        """Create the run directory with the resolved spec and the request (no secret values)."""
        from cloudtrain.providers.process import free_port
        from cloudtrain.providers.run_directory import write_json_atomic

        for name, source in request.payload["secret_env"].items():
            if source not in os.environ:
                raise SpecError(f"secrets.{name}: environment variable {source} is not set",
                                f"export {source}=... before running, or remove the secret from the spec")
        run_dir = Path(request.payload["run_dir"])
        if (run_dir / "request.json").exists():
            return run_dir  # a retried submission of the same plan
        run_dir.mkdir(parents=True, exist_ok=False)
        payload = json.loads(json.dumps(request.payload))
        if plan.nodes > 1:
            port = free_port()
            for node in payload["nodes"]:
                node["argv"] = [str(port) if a == MASTER_PORT else a for a in node["argv"]]
        if plan.spec.distribution.type == "tensorflow":  # each TF_CONFIG task's port, chosen now
            ports = {f"{{tf_port_{n}}}": str(free_port()) for n in range(len(payload["nodes"]))}
            for node in payload["nodes"]:
                for placeholder, value in ports.items():
                    node["env"]["TF_CONFIG"] = node["env"]["TF_CONFIG"].replace(placeholder, value)
        for sub in ("logs", "model", "output"):
            (run_dir / sub).mkdir()
        write_json_atomic(run_dir / "spec.json", plan.spec.model_dump(mode="json"))
        write_json_atomic(run_dir / "request.json", payload)
        write_json_atomic(run_dir / "status.json", {"state": "PENDING", "job_id": plan.job_name})
        return run_dir

    def submit(self, plan: "Plan", request: NativeRequest) -> JobRef:  # no remote create: nothing to make idempotent
        """Start a detached supervisor for the job and return at once."""
        run_dir = self.prepare(plan, request)
        import subprocess

        pid_file = run_dir / "supervisor.pid"
        if not pid_file.exists():
            with open(run_dir / "logs" / "supervisor.log", "ab") as log:
                process = subprocess.Popen([sys.executable, "-m", "cloudtrain.providers.process", str(run_dir)],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            pid_file.write_text(str(process.pid))
        return self.local_ref(plan, run_dir)

    def run_foreground(self, plan: "Plan", request: NativeRequest, on_line: Callable[[str], None] | None = None,
                       on_start: Callable[[JobRef], None] | None = None) -> tuple[JobRef, JobStatus]:
        """Run the job in this process (``cloudtrain run``); Ctrl-C cancels it cleanly."""
        from cloudtrain.providers.process import Supervisor, install_cancel_handlers, load_commands, max_runtime, metric_patterns

        run_dir = self.prepare(plan, request)
        if on_start is not None:
            on_start(self.local_ref(plan, run_dir))
        commands, grace = load_commands(run_dir, request.payload["secret_env"])
        supervisor = Supervisor(run_dir, commands, grace_seconds=grace, on_line=on_line,
                                metric_patterns=metric_patterns(request.payload), max_runtime_seconds=max_runtime(request.payload))
        restore = install_cancel_handlers(supervisor)
        try:
            supervisor.run()
        finally:
            restore()
        ref = self.local_ref(plan, run_dir)
        return ref, self.status(ref)

    def local_ref(self, plan: "Plan", run_dir: Path) -> JobRef:
        return JobRef(job_id=plan.job_name, cloud="local", native_id=plan.job_name,
                      details={"run_dir": str(run_dir), "submission_token": plan.submission_token})

    # -- following ----------------------------------------------------------------------------

    @staticmethod
    def _run_dir(ref: JobRef) -> Path:
        run_dir = ref.details.get("run_dir")
        if not run_dir or not Path(run_dir).is_dir():
            raise UsageError(f"the run directory of job {ref.job_id} is gone ({run_dir})", "it was deleted or moved; the job cannot be followed")
        return Path(run_dir)

    def status(self, ref: JobRef) -> JobStatus:
        from cloudtrain.providers.run_directory import run_status

        return run_status(self._run_dir(ref))

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        from cloudtrain.providers.run_directory import read_new_lines

        return read_new_lines(self._run_dir(ref) / "logs" / "job.log", cursor, final)

    def cancel(self, ref: JobRef) -> None:
        from cloudtrain.providers.run_directory import cancel_run

        cancel_run(self._run_dir(ref))
