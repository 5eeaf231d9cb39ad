"""The runtime contract: one :class:`RunContext`, read from whichever environment the job runs in.

Environments, detected in this order (a cloud named by ``CLOUDTRAIN_ENVIRONMENT`` wins over the
variables seen: each job also gets the other clouds' variables, :mod:`cloudtrain.runtime.variables`):

- **local** (cloudtrain's local executor and the emulators' inner runs): ``CLOUDTRAIN_RUN_DIR`` with
  ``CLOUDTRAIN_MODEL_DIR``, ``CLOUDTRAIN_OUTPUT_DIR``, ``CLOUDTRAIN_CHECKPOINT_DIR``,
  ``CLOUDTRAIN_INPUTS`` / ``CLOUDTRAIN_OUTPUTS`` (JSON name -> path), ``CLOUDTRAIN_HPS`` (JSON) and
  ``CLOUDTRAIN_METRICS_FILE``. On every cloud, ``CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS`` carries the
  spec's ``checkpoint.every``.
- **sagemaker**: ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_CHANNELS`` and ``SM_CHANNEL_<NAME>``,
  ``SM_HPS``, ``SM_HOSTS``, ``SM_CURRENT_HOST``, ``SM_NUM_GPUS``; checkpoints in ``/opt/ml/checkpoints``
  (or ``CLOUDTRAIN_CHECKPOINT_DIR`` when the request sets another local path).
- **azureml**: ``AZUREML_RUN_ID`` and friends; inputs and outputs arrive as command-line arguments
  that :mod:`cloudtrain.runtime.launch` turns into ``CLOUDTRAIN_INPUTS`` / ``CLOUDTRAIN_OUTPUTS``;
  the model goes to the ``model`` output when bound, else ``./outputs/model`` (uploaded by Azure ML).
- **vertex**: ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR`` (``gs://`` URIs,
  read through the Cloud Storage FUSE mount ``/gcs/<bucket>/...``) and ``CLUSTER_SPEC``.

Rank, local rank and world size come, in this order, from:

1. torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (also Azure ML's PyTorch distribution), when
   ``LOCAL_RANK`` is set;
2. MPI: OpenMPI's ``OMPI_COMM_WORLD_RANK`` / ``_SIZE`` / ``_LOCAL_RANK``, or MPICH / Intel MPI's
   ``PMI_RANK`` / ``PMI_SIZE``. The node of rank ``r`` is ``r // CLOUDTRAIN_PROCESSES_PER_NODE`` (mpirun
   fills each host's slots in turn), and its local rank ``r % CLOUDTRAIN_PROCESSES_PER_NODE``: on one
   machine standing for several nodes (the local executor, the emulators) that is the node the
   cloud would have placed it on;
3. ``TF_CONFIG`` (TensorFlow's cluster): the chief (or SageMaker's ``master``) is rank 0, then the
   workers; world size counts chief and workers; a ``ps`` task's rank follows them (it is never
   the main process); :attr:`RunContext.task_type` is the task's type. Only in TensorFlow jobs
   (``CLOUDTRAIN_DISTRIBUTION`` tensorflow or unset): Vertex sets ``TF_CONFIG`` for every job;
4. ``RANK`` / ``WORLD_SIZE`` alone (Vertex's PyTorch images), else the cloud's host list.

:attr:`RunContext.pool` is the group of nodes the process runs in: the spec's ``resources.pools``
name (``CLOUDTRAIN_POOL``; SageMaker's instance group ``SM_CURRENT_INSTANCE_GROUP``), or the cloud's
own (Vertex's ``workerpool0``...); None on a homogeneous job.

``log_metric`` (main process only) appends one JSON object per line to the metrics file and prints
one line matching :data:`METRIC_PATTERN` to stdout, which cloud tuning services parse.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import re

METRIC_PREFIX = "cloudtrain-metric"
#: Each metric line on stdout, e.g. ``cloudtrain-metric name=val_loss value=0.1234 step=10``.
METRIC_PATTERN = METRIC_PREFIX + r" name=(?P<name>[A-Za-z0-9_.:/-]+) value=(?P<value>\S+)(?: step=(?P<step>\d+))?"


def metric_record(name: str, value: float, step: int | None = None) -> dict[str, Any]:
    """One line of a metrics file (``metrics.jsonl``): name, value (a value that is not finite as
    text, which JSON cannot hold), time and, when given, step."""
    value = float(value)
    record: dict[str, Any] = {"name": name, "value": value if math.isfinite(value) else str(value), "time": time.time()}
    if step is not None:
        record["step"] = int(step)
    return record


def matched_metrics(patterns: Iterable[tuple[str, "re.Pattern[str]"]], text: str) -> Iterator[tuple[str, float]]:
    """(name, value) of each metric whose regex finds a number, in its first group, in the output
    line ``text``, as the clouds read metric definitions from a job's logs."""
    for name, pattern in patterns:
        match = pattern.search(text)
        if match is None:
            continue
        try:
            yield name, float(match.group(1))
        except (IndexError, ValueError):
            continue


def metric_regex(name: str) -> str:
    """A regex whose first group captures the value of metric ``name`` (for SageMaker, Vertex...)."""
    import re

    return f"{METRIC_PREFIX} name={re.escape(name)} value=([-+]?[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


@dataclass
class RunContext:
    """Where a job's data and outputs are, its hyperparameters, and its place in a distributed run."""

    environment: str
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path | None
    hyperparameters: dict[str, Any]
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    node_rank: int = 0
    num_nodes: int = 1
    num_gpus: int = 0
    tensorboard_dir: Path | None = None
    metrics_file: Path | None = None
    #: Seconds between checkpoints asked for by the spec's ``checkpoint.every`` (None: the script's own choice).
    checkpoint_every_seconds: float | None = None
    #: The group of nodes this process runs in (``resources.pools`` name, or the cloud's pool); None if one kind.
    pool: str | None = None
    #: TensorFlow's task type from ``TF_CONFIG`` (chief, master, worker, ps, evaluator); None without one.
    task_type: str | None = None
    _stdout: Any = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        """True in the one process that writes checkpoints, metrics and the model."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def hp(self, name: str, default: Any = None) -> Any:
        """A hyperparameter converted to the type of ``default`` (clouds may hand values as strings)."""
        value = self.hyperparameters.get(name, default)
        if default is None or value is None or isinstance(value, type(default)):
            return value
        if isinstance(default, bool):
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        return type(default)(value)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record a metric (main process only): a JSON line in the metrics file and a stdout line."""
        if not self.is_main:
            return
        value = float(value)
        record = metric_record(name, value, step)
        if self.metrics_file is not None:
            self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        line = f"{METRIC_PREFIX} name={name} value={value:.6g}" + (f" step={int(step)}" if step is not None else "")
        print(line, file=self._stdout or sys.stdout, flush=True)
        _report_to_tuning_service(self.environment, name, value, step)


HYPERTUNE_FILE = "/tmp/hypertune/output.metrics"  # cloudml-hypertune's default (CLOUD_ML_HP_METRIC_FILE)
HYPERTUNE_KEEP = 100
_mlflow_warned = False


def hypertune_line(metric: str, value: float, step: int | None, trial: str = "0") -> str:
    """One line of the metrics file as ``cloudml-hypertune`` writes it (what Vertex AI reads)."""
    body = {"timestamp": time.time(), "trial": str(trial), metric: str(float(value)),
            "global_step": str(int(step) if step else 0), "checkpoint_path": ""}
    return json.dumps(body, sort_keys=True)


def _report_to_tuning_service(environment: str, name: str, value: float, step: int | None) -> None:
    """Where a cloud's tuning service reads a trial's objective: on Vertex AI (a trial has
    ``CLOUD_ML_TRIAL_ID``), the metrics file ``cloudml-hypertune`` keeps (its last 100 reports);
    on Azure ML, MLflow, when the job's environment has it and a tracking server is set (Azure ML sets
    ``MLFLOW_TRACKING_URI`` in its jobs); an MLflow failure is warned about once, never raised."""
    if environment == "vertex" and os.environ.get("CLOUD_ML_TRIAL_ID"):
        path = Path(os.environ.get("CLOUD_ML_HP_METRIC_FILE") or HYPERTUNE_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        lines.append(hypertune_line(name, value, step, os.environ["CLOUD_ML_TRIAL_ID"]))
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # one per process: a relay writes beside the script
        partial.write_text("\n".join(lines[-HYPERTUNE_KEEP:]) + "\n", encoding="utf-8")
        os.replace(partial, path)  # the reader never sees a half-written file
    elif environment == "azureml" and math.isfinite(value) and os.environ.get("MLFLOW_TRACKING_URI"):
        try:
            import mlflow  # type: ignore[import-not-found]
        except ImportError:
            return
        try:
            mlflow.log_metric(name, value, step=step)
        except Exception as error:  # noqa: BLE001 - a tracking hiccup never stops the training
            global _mlflow_warned
            if not _mlflow_warned:
                _mlflow_warned = True
                print(f"cloudtrain runtime: MLflow did not take metric {name!r} ({type(error).__name__}); "
                      "the job goes on", file=sys.stderr, flush=True)


def _json(environ: Mapping[str, str], key: str, default: Any) -> Any:
    raw = environ.get(key)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise RuntimeError(f"cloudtrain runtime: {key} is not valid JSON") from None


def decode_hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Clouds pass hyperparameters as strings; give back numbers and booleans where they are."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            try:
                decoded = json.loads(value)
                value = decoded if isinstance(decoded, (int, float, bool, list)) else value
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def _int(environ: Mapping[str, str], *keys: str) -> int | None:
    for key in keys:
        value = environ.get(key, "").strip()
        if value.lstrip("-").isdigit():
            return int(value)
    return None


def _tf_task(environ: Mapping[str, str]) -> tuple[int, int, str] | None:
    """(rank, world size, task type) from ``TF_CONFIG``, or None without a task in it."""
    config = _json(environ, "TF_CONFIG", {})
    task, cluster = config.get("task") or {}, config.get("cluster") or {}
    if not isinstance(task, dict) or "type" not in task:
        return None
    kind, index = str(task["type"]), int(task.get("index", 0))
    order = [t for t in ("chief", "master") if cluster.get(t)] + ["worker"]
    world = sum(len(cluster.get(t) or []) for t in order) or 1
    if kind in order:
        before = order[:order.index(kind)]
        return sum(len(cluster.get(t) or []) for t in before) + index, world, kind
    return world + index, world, kind  # ps, evaluator: after the training tasks


def _ranks(environ: Mapping[str, str], node_rank: int, num_nodes: int, num_gpus: int) -> dict[str, Any]:
    per_node = _int(environ, "CLOUDTRAIN_PROCESSES_PER_NODE")
    mpi_rank = _int(environ, "OMPI_COMM_WORLD_RANK", "PMI_RANK")
    # TF_CONFIG, which Vertex sets for every job, places a process only in TensorFlow jobs (or untagged ones)
    task = _tf_task(environ) if environ.get("CLOUDTRAIN_DISTRIBUTION", "tensorflow") == "tensorflow" else None
    task_type = task[2] if task else None
    if "LOCAL_RANK" in environ:  # torchrun (or a cloud's PyTorch launch)
        rank, world = int(environ.get("RANK", node_rank)), int(environ.get("WORLD_SIZE", num_nodes))
        local_rank = int(environ["LOCAL_RANK"])
        node_rank = _int(environ, "GROUP_RANK", "NODE_RANK") if _int(environ, "GROUP_RANK", "NODE_RANK") is not None else node_rank
    elif mpi_rank is not None:
        rank, world = mpi_rank, _int(environ, "OMPI_COMM_WORLD_SIZE", "PMI_SIZE") or 1
        per_node = per_node or _int(environ, "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS") or world
        local_rank, node_rank = rank % per_node, rank // per_node
        num_nodes = max(num_nodes, -(-world // per_node))
    elif task is not None:
        rank, world, _ = task
        local_rank = 0
        node_rank = rank if rank < world else node_rank
    else:
        rank, world = int(environ.get("RANK", node_rank)), int(environ.get("WORLD_SIZE", num_nodes))
        local_rank = 0
    return {"rank": rank, "local_rank": local_rank, "world_size": world, "node_rank": node_rank,
            "num_nodes": num_nodes, "num_gpus": num_gpus, "task_type": task_type}


def _paths(values: Mapping[str, str]) -> dict[str, Path]:
    return {name: Path(path) for name, path in values.items()}


def _with_files(inputs: dict[str, Path], environ: Mapping[str, str]) -> dict[str, Path]:
    """Each input that is one file (``CLOUDTRAIN_INPUT_FILES``: name -> file name) as that file,
    where the cloud handed the folder holding it (a SageMaker channel, a staged prefix on Vertex)."""
    files = _json(environ, "CLOUDTRAIN_INPUT_FILES", {})
    return {name: path / files[name] if name in files and path.is_dir() else path for name, path in inputs.items()}


def _local(environ: Mapping[str, str]) -> RunContext:
    run_dir = Path(environ["CLOUDTRAIN_RUN_DIR"])
    output_dir = Path(environ.get("CLOUDTRAIN_OUTPUT_DIR", run_dir / "output"))
    checkpoint = environ.get("CLOUDTRAIN_CHECKPOINT_DIR")
    node_rank = int(environ.get("NODE_RANK", environ.get("GROUP_RANK", 0)))
    nodes = int(environ.get("CLOUDTRAIN_NUM_NODES", 1))
    return RunContext(
        environment=environ.get("CLOUDTRAIN_ENVIRONMENT", "local"),
        inputs=_paths(_json(environ, "CLOUDTRAIN_INPUTS", {})),
        outputs=_paths(_json(environ, "CLOUDTRAIN_OUTPUTS", {})),
        model_dir=Path(environ.get("CLOUDTRAIN_MODEL_DIR", run_dir / "model")),
        output_dir=output_dir,
        checkpoint_dir=Path(checkpoint) if checkpoint else None,
        hyperparameters=decode_hyperparameters(_json(environ, "CLOUDTRAIN_HPS", {})),
        tensorboard_dir=output_dir / "tensorboard",
        metrics_file=Path(environ.get("CLOUDTRAIN_METRICS_FILE", run_dir / "metrics.jsonl")),
        pool=environ.get("CLOUDTRAIN_POOL") or None,
        **_ranks(environ, node_rank, nodes, int(environ.get("CLOUDTRAIN_NUM_GPUS", 0))),
    )


def _sagemaker(environ: Mapping[str, str]) -> RunContext:
    channels = _json(environ, "SM_CHANNELS", [])
    inputs = {}
    for name in channels:
        path = environ.get(f"SM_CHANNEL_{name.upper()}")
        if path:
            inputs[name] = Path(path)
    for key, path in environ.items():  # channels not listed in SM_CHANNELS
        if key.startswith("SM_CHANNEL_") and not any(n.upper() == key[11:] for n in inputs):
            inputs[key[11:].lower()] = Path(path)
    inputs = _with_files(inputs, environ)
    hosts = _json(environ, "SM_HOSTS", ["algo-1"])
    current = environ.get("SM_CURRENT_HOST", hosts[0] if hosts else "algo-1")
    node_rank = hosts.index(current) if current in hosts else 0
    output_dir = Path(environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    checkpoint = Path(environ.get("CLOUDTRAIN_CHECKPOINT_DIR", "/opt/ml/checkpoints"))
    metrics = environ.get("CLOUDTRAIN_METRICS_FILE")
    return RunContext(
        environment="sagemaker",
        inputs=inputs,
        outputs={},
        model_dir=Path(environ.get("SM_MODEL_DIR", "/opt/ml/model")),
        output_dir=output_dir,
        checkpoint_dir=checkpoint,
        hyperparameters=decode_hyperparameters(_json(environ, "SM_HPS", {})),
        tensorboard_dir=output_dir / "tensorboard",
        metrics_file=Path(metrics) if metrics else output_dir / "metrics.jsonl",
        pool=environ.get("SM_CURRENT_INSTANCE_GROUP") or environ.get("CLOUDTRAIN_POOL") or None,
        **_ranks(environ, node_rank, len(hosts) or 1, int(environ.get("SM_NUM_GPUS", 0))),
    )


def gcs_path(uri: str, mount: str = "/gcs") -> Path:
    """``gs://bucket/a/b`` -> ``/gcs/bucket/a/b`` (Vertex mounts buckets with Cloud Storage FUSE)."""
    if uri.startswith("gs://"):
        return Path(mount) / uri[len("gs://"):]
    return Path(uri)


def _vertex(environ: Mapping[str, str]) -> RunContext:
    mount = environ.get("CLOUDTRAIN_GCS_MOUNT", "/gcs")
    cluster = _json(environ, "CLUSTER_SPEC", {})
    task = cluster.get("task", {})
    pools = cluster.get("cluster", {})
    primary = len(pools.get("workerpool0", [])) or 1
    nodes = primary + len(pools.get("workerpool1", []))
    pool, index = task.get("type", "workerpool0"), int(task.get("index", 0))
    node_rank = index if pool == "workerpool0" else primary + index
    model_dir = gcs_path(environ["AIP_MODEL_DIR"], mount)
    output_dir = model_dir.parent
    checkpoint = environ.get("CLOUDTRAIN_CHECKPOINT_URI") or environ.get("AIP_CHECKPOINT_DIR")
    tensorboard = environ.get("AIP_TENSORBOARD_LOG_DIR")
    return RunContext(
        environment="vertex",
        inputs=_with_files({k: gcs_path(v, mount) for k, v in _json(environ, "CLOUDTRAIN_INPUTS", {}).items()}, environ),
        outputs={k: gcs_path(v, mount) for k, v in _json(environ, "CLOUDTRAIN_OUTPUTS", {}).items()},
        model_dir=model_dir,
        output_dir=output_dir,
        checkpoint_dir=gcs_path(checkpoint, mount) if checkpoint else None,
        hyperparameters=decode_hyperparameters(_json(environ, "CLOUDTRAIN_HPS", {})),
        tensorboard_dir=gcs_path(tensorboard, mount) if tensorboard else output_dir / "tensorboard",
        metrics_file=output_dir / "metrics.jsonl",
        pool=environ.get("CLOUDTRAIN_POOL") or (pool if len(pools) > 1 else None),
        **_ranks(environ, node_rank, nodes, int(environ.get("CLOUDTRAIN_NUM_GPUS", 0))),
    )


def _azureml(environ: Mapping[str, str]) -> RunContext:
    outputs = _paths(_json(environ, "CLOUDTRAIN_OUTPUTS", {}))
    outputs_dir = Path(environ.get("CLOUDTRAIN_AZUREML_OUTPUTS_DIR", "outputs")).absolute()
    model_dir = outputs.get("model", outputs_dir / "model")
    checkpoint = environ.get("CLOUDTRAIN_CHECKPOINT_DIR") or outputs.pop("checkpoints", None)
    nodes = int(environ.get("AZUREML_NODE_COUNT", environ.get("CLOUDTRAIN_NUM_NODES", 1)))
    node_rank = int(environ.get("NODE_RANK", environ.get("GROUP_RANK", 0)))
    return RunContext(
        environment="azureml",
        inputs=_with_files(_paths(_json(environ, "CLOUDTRAIN_INPUTS", {})), environ),
        outputs=outputs,
        model_dir=model_dir,
        output_dir=outputs_dir,
        checkpoint_dir=Path(checkpoint) if checkpoint else outputs_dir / "checkpoints",
        hyperparameters=decode_hyperparameters(_json(environ, "CLOUDTRAIN_HPS", {})),
        tensorboard_dir=outputs_dir / "tensorboard",
        metrics_file=outputs_dir / "metrics.jsonl",
        **_ranks(environ, node_rank, nodes, int(environ.get("CLOUDTRAIN_NUM_GPUS", 0))),
    )


#: Each environment's reader; the clouds' names are also what ``CLOUDTRAIN_ENVIRONMENT`` may name.
READERS = {"local": _local, "sagemaker": _sagemaker, "vertex": _vertex, "azureml": _azureml}


def detect_environment(environ: Mapping[str, str]) -> str:
    """``local``, a cloud's name, or ``bare``. A cloud named by ``CLOUDTRAIN_ENVIRONMENT`` wins over
    the variables seen, since every job also has the other clouds' (:mod:`cloudtrain.runtime.variables`)."""
    if environ.get("CLOUDTRAIN_RUN_DIR"):
        return "local"
    if environ.get("CLOUDTRAIN_ENVIRONMENT") in READERS.keys() - {"local"}:
        return environ["CLOUDTRAIN_ENVIRONMENT"]
    if environ.get("SM_MODEL_DIR") or environ.get("SM_HOSTS") or environ.get("SM_TRAINING_ENV"):
        return "sagemaker"
    if environ.get("AIP_MODEL_DIR") or environ.get("CLUSTER_SPEC"):
        return "vertex"
    if environ.get("AZUREML_RUN_ID") or environ.get("AZUREML_EXPERIMENT_ID"):
        return "azureml"
    return "bare"


def read_context(environ: Mapping[str, str]) -> RunContext:
    """The RunContext ``environ`` describes, without creating its directories."""
    kind = detect_environment(environ)
    if kind == "bare":
        run_dir = Path("cloudtrain-run").absolute()
        environ = {**environ, "CLOUDTRAIN_RUN_DIR": str(run_dir), "CLOUDTRAIN_ENVIRONMENT": "bare"}
        kind = "local"
    ctx = READERS[kind](environ)
    every = environ.get("CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS")
    if every:
        ctx.checkpoint_every_seconds = float(every)
    return ctx


def context(environ: Mapping[str, str] | None = None) -> RunContext:
    """The RunContext of this process. Outside any environment (plain ``python train.py``), it uses
    ``./cloudtrain-run`` as the run directory so scripts still run."""
    ctx = read_context(os.environ if environ is None else environ)
    for directory in (ctx.model_dir, ctx.output_dir, ctx.checkpoint_dir):
        if directory is not None and ctx.is_main:
            directory.mkdir(parents=True, exist_ok=True)
    return ctx
