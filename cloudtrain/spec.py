"""The provider-neutral training job spec.

A :class:`JobSpec` is pure data: pydantic v2 models, frozen, unknown keys refused, units in the
names (``memory_gib``, ``max_runtime``). It is written in YAML (see ``examples/``) or built in
Python. Nothing here looks up the catalog, touches the network or prints; loading a spec from a
file (with line numbers in errors, ``--set`` overrides and config-file settings) lives in
:mod:`cloudtrain.specfile`.

Conventions:
- durations are strings such as ``90m``, ``2h``, ``1h30m`` or a number of seconds;
- accelerators are ``NAME`` or ``NAME:COUNT`` per node (``A100:8``, ``T4``);
- relative paths (``code``, local inputs) are relative to the spec file's directory;
- secrets are references (an environment variable, or a secret in a cloud store), never values.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cloudtrain.entry_points import preload_pydantic_plugins

preload_pydantic_plugins()  # before the first model is built: pydantic would read every package's metadata

def parse_duration(value: Any) -> Any:
    """``"90m"``, ``"2h"``, ``"1h30m"``, ``"45s"``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta) or value is None:
        return value
    if isinstance(value, bool):
        raise ValueError("a duration such as '90m' or '2h' is expected")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; write it like '90m', '2h', '1h30m' or '45s'")
        if abs(value) > 10 ** 12:
            raise ValueError(f"{str(value)[:20]}...: at most 28 days (the longest any of the clouds allows)")
        seconds: float | None = float(value)
    elif isinstance(value, str):
        from pytimeparse import parse as _parse  # small; imported when a duration is read

        if len(value) > 64:
            raise ValueError(f"{value[:20]!r}...: write a duration like '90m', '2h', '1h30m' or '45s'")
        seconds = _parse(value.strip())
        if seconds is not None and (not math.isfinite(float(seconds)) or abs(seconds) > 10 ** 12):
            raise ValueError(f"{value!r}: at most 28 days (the longest any of the clouds allows)")
    else:
        seconds = None
    if seconds is None:
        raise ValueError(f"{value!r} is not a duration; write it like '90m', '2h', '1h30m' or '45s'")
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"{value!r}: a duration is a whole number of seconds, at least 1s")
    if seconds > 28 * 86400:
        raise ValueError(f"{value!r}: at most 28 days (the longest any of the clouds allows)")
    return timedelta(seconds=int(seconds))


def format_duration(value: timedelta) -> str:
    """The shortest exact form: ``2h``, ``90m``, ``1h30m``, ``45s``."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[a-z]+\s*)+$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration: '90m', '2h', '1h30m', '45s', or seconds.",
            "examples": ["90m", "2h"],
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)


_ACCELERATOR = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.-]*)\s*(?::\s*(\d+))?\s*$")


class Accelerator(_Model):
    """Accelerator type and count per node, written ``NAME`` or ``NAME:COUNT``."""

    name: str = Field(description="Neutral accelerator name: T4, L4, A10G, V100, A100, A100-80GB, H100...")
    count: int = Field(1, ge=1, le=16, description="Accelerators per node.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _ACCELERATOR.match(value)
            if not match:
                raise ValueError(f"{value!r} is not an accelerator; write it like 'T4' or 'A100:8'")
            return {"name": match.group(1), "count": int(match.group(2) or 1)}
        return value

    def __str__(self) -> str:
        return self.name if self.count == 1 else f"{self.name}:{self.count}"


AcceleratorField = Annotated[
    Accelerator,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_.-]*(:\d+)?$", "examples": ["T4", "A100:8"]},
                {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class Pool(_Model):
    """A named group of nodes with its own machine (``resources.pools``): a heterogeneous cluster."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="The pool's name (the runtime context's `pool`).")
    nodes: int = Field(1, ge=1, le=64, description="Nodes in this pool.")
    accelerator: AcceleratorField | None = Field(None, description="Per node, e.g. 'A100:8'.")
    cpus: int | None = Field(None, ge=1, description="Minimum vCPUs per node.")
    memory_gib: float | None = Field(None, gt=0, description="Minimum memory per node, GiB.")
    instance_type: dict[str, str] = Field(default_factory=dict, description="An exact instance type per backend.")


class Resources(_Model):
    accelerator: AcceleratorField | None = Field(None, description="Per node, e.g. 'T4' or 'A100:8'.")
    cpus: int | None = Field(None, ge=1, description="Minimum vCPUs per node.")
    memory_gib: float | None = Field(None, gt=0, description="Minimum memory per node, GiB.")
    disk_gib: int = Field(50, ge=1, le=16384, description="Disk (volume) per node, GiB.")
    nodes: int = Field(1, ge=1, le=64, description="Number of nodes (instances).")
    instance_type: dict[str, str] = Field(
        default_factory=dict,
        description="An exact instance type per backend, e.g. {sagemaker: ml.g5.xlarge, vertex: a2-highgpu-1g}; "
                    "it wins over the accelerator/cpus/memory search.")

    pools: list[Pool] = Field(default_factory=list, description="Named groups of nodes, each with its own machine "
                                                                 "(SageMaker instance groups, Vertex worker pools); the first "
                                                                 "pool runs the distributed training. Instead of nodes/accelerator/"
                                                                 "cpus/memory_gib/instance_type.")

    @field_validator("instance_type", mode="before")
    @classmethod
    def _instance_type_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("give the instance type per cloud, e.g. {sagemaker: ml.g5.xlarge}")
        return value

    @model_validator(mode="after")
    def _pools_or_one_kind(self) -> "Resources":
        if self.pools:
            given = sorted({"accelerator", "cpus", "memory_gib", "instance_type", "nodes"} & self.model_fields_set)
            if given:
                raise ValueError(f"pools: give {', '.join(given)} per pool, not beside pools")
            names = [pool.name for pool in self.pools]
            if len(set(names)) != len(names):
                raise ValueError("pools: each pool has its own name")
            if sum(pool.nodes for pool in self.pools) > 64:
                raise ValueError("pools: at most 64 nodes in all")
        return self

    def pool_resources(self, pool: "Pool") -> "Resources":
        """This pool's machine as one kind of node (what an offer is chosen for)."""
        return Resources(accelerator=pool.accelerator, cpus=pool.cpus, memory_gib=pool.memory_gib,
                         disk_gib=self.disk_gib, nodes=pool.nodes, instance_type=pool.instance_type)


class Framework(_Model):
    """The framework whose training image each cloud provides (SageMaker's framework images, Azure ML's
    curated environments, Vertex AI's prebuilt training containers).

    ``version`` is the framework's own version: PyTorch ``"2.5"``, TensorFlow ``"2.16"``, scikit-learn
    ``"1.2-1"`` (SageMaker's ``<version>-<build>``), XGBoost ``"1.7-1"``; for ``huggingface`` it is the
    Transformers version (``"4.36"``) and ``pytorch`` (or ``tensorflow``) is the version of the base
    framework in the image. Without a version each cloud picks the newest training image it has for
    the framework, and the rendered request names it; a version a cloud lacks is refused at plan time
    with the versions it has, never replaced by another."""

    name: Literal["pytorch", "tensorflow", "sklearn", "xgboost", "huggingface"] = Field(
        description="Training framework of the job's container.")
    version: str | None = Field(None, description="Framework version, e.g. '2.5' for PyTorch or '1.2-1' for scikit-learn; "
                                                  "the Transformers version for huggingface; newest on each cloud if unset.")
    python: str | None = Field(None, description="Python version of the image, e.g. 'py311'; newest if unset.")
    pytorch: str | None = Field(None, description="huggingface only: the PyTorch version in the image, e.g. '2.1'; "
                                                  "newest for the Transformers version if neither pytorch nor tensorflow is set.")
    tensorflow: str | None = Field(None, description="huggingface only: the TensorFlow version in the image, e.g. '2.6'.")

    @field_validator("version", "pytorch", "tensorflow", mode="before")
    @classmethod
    def _version_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _base_framework(self) -> "Framework":
        if self.name != "huggingface" and (self.pytorch or self.tensorflow):
            field = "pytorch" if self.pytorch else "tensorflow"
            raise ValueError(f"'{field}' is the base framework version of a huggingface image; with {self.name} use 'version'")
        if self.pytorch and self.tensorflow:
            raise ValueError("give 'pytorch' or 'tensorflow' (the image's base framework), not both")
        return self

    @property
    def base_framework(self) -> tuple[str, str] | None:
        """``("pytorch", "2.1")`` for a huggingface image with a base framework given, else None."""
        if self.pytorch:
            return "pytorch", self.pytorch
        return ("tensorflow", self.tensorflow) if self.tensorflow else None


class ReductionServer(_Model):
    """Vertex AI's reduction server: CPU replicas that all-reduce the GPU workers' gradients."""

    replicas: int = Field(ge=1, le=64, description="Reduction server replicas (worker pool 2).")
    machine_type: str = Field("n1-highcpu-16", description="The reduction servers' Vertex machine type.")


#: The launcher each distribution kind starts, and the environment its scripts read:
#: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), mpi (mpirun: OMPI_COMM_WORLD_*),
#: tensorflow (one process per node with TF_CONFIG), deepspeed (the deepspeed launcher with a hostfile,
#: or torchrun where the cloud starts the processes itself; the same variables as torchrun).
DISTRIBUTION_TYPES = ("none", "torchrun", "mpi", "tensorflow", "deepspeed")


class Distribution(_Model):
    """How the job's processes are started across its nodes (see :data:`DISTRIBUTION_TYPES`)."""

    type: Literal["none", "torchrun", "mpi", "tensorflow", "deepspeed"] = "none"
    processes_per_node: int | Literal["auto"] = Field(
        "auto", description="Worker processes per node; 'auto' = one per GPU (one on a CPU-only node); "
                            "tensorflow runs one process per node (TF_CONFIG names one task per worker)."
    )
    parameter_servers: int = Field(0, ge=0, le=64, description="tensorflow only: parameter-server tasks ('ps' in TF_CONFIG).")
    mpi_options: list[str] = Field(default_factory=list, description="mpi only: extra mpirun options, e.g. ['-x', 'NCCL_DEBUG=INFO'].")
    smddp: bool = Field(False, description="SageMaker only: the SageMaker distributed data-parallel library "
                                           "(torchrun or mpi, on the instance types the SageMaker SDK allows).")
    reduction_server: ReductionServer | None = Field(None, description="Vertex only: a reduction server pool "
                                                                         "(torchrun or tensorflow on GPUs).")

    @field_validator("processes_per_node")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("processes_per_node must be at least 1 or 'auto'")
        return value

    @model_validator(mode="after")
    def _options_of_the_kind(self) -> "Distribution":
        if self.parameter_servers and self.type != "tensorflow":
            raise ValueError("parameter_servers: parameter-server tasks go with type: tensorflow")
        if self.mpi_options and self.type != "mpi":
            raise ValueError("mpi_options: mpirun options go with type: mpi")
        if self.smddp and self.type not in ("torchrun", "mpi"):
            raise ValueError("smddp: SageMaker's data-parallel library goes with type: torchrun or mpi")
        if self.reduction_server and self.type not in ("torchrun", "tensorflow"):
            raise ValueError("reduction_server: Vertex's reduction server goes with type: torchrun or tensorflow")
        if self.type == "tensorflow" and self.processes_per_node not in ("auto", 1):
            raise ValueError("processes_per_node: tensorflow runs one process per node (its strategy uses every GPU)")
        return self


_URI_SCHEMES = ("s3://", "gs://", "azureml://", "https://", "http://", "wasbs://", "abfss://")


class Spot(_Model):
    enabled: bool = False
    max_wait: Duration | None = Field(
        None, description="Longest total time including waits for capacity; defaults to 2 x max_runtime."
    )


class Checkpoint(_Model):
    enabled: bool = False
    dir: str | None = Field(None, description="Local directory inside the job; the cloud's default if unset.")
    uri: str | None = Field(None, description="A fixed checkpoint location (s3://, gs://, azureml://) kept across "
                                              "resubmissions, so a resubmitted job resumes; a new one per submission if unset.")

    @field_validator("uri")
    @classmethod
    def _cloud_uri(cls, value: str | None) -> str | None:
        return cloud_location(value, "a checkpoint location")
    every: Duration | None = Field(None, description="Interval between checkpoints, e.g. '10m'.")




class _FromString(_Model):
    """A model that may be written as one string: the value of its ``_string_field``."""

    _string_field: ClassVar[str] = "uri"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {cls._string_field: value} if isinstance(value, str) else value


def cloud_location(value: str | None, what: str) -> str | None:
    if value is not None and not value.startswith(_URI_SCHEMES):
        raise ValueError(f"{value!r}: {what} is a {', '.join(_URI_SCHEMES)} URI")
    return value


class Input(_FromString):
    """A named input: a local path (staged with the job) or a URI."""

    uri: str = Field(description="Local path, s3://, gs://, azureml://, https://, wasbs:// or abfss:// location.")
    content_type: str | None = Field(None, description="The data's MIME type, for containers that need it (e.g. text/csv "
                                                       "for SageMaker's built-in XGBoost).")
    mode: Literal["File", "FastFile", "Pipe", "download", "mount"] | None = Field(
        None, description="How the job reads it: File/FastFile/Pipe on SageMaker, download/mount on Azure ML.")
    distribution: Literal["FullyReplicated", "ShardedByS3Key"] | None = Field(
        None, description="SageMaker: every node gets all of it, or a shard of the S3 objects.")

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        if "://" in value and not value.startswith(_URI_SCHEMES):
            raise ValueError(f"{value!r}: supported locations are a local path or {', '.join(_URI_SCHEMES)}")
        if not value.strip():
            raise ValueError("an input location must not be empty")
        return value

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    @property
    def file_name(self) -> str | None:
        """The file's name when the input is one file (a local file; a URI whose last part has an
        extension and no trailing ``/``), else None (a folder or prefix)."""
        if self.is_local:
            path = Path(self.uri)
            return path.name if path.is_file() else None
        _, _, rest = self.uri.split("?", 1)[0].partition("://")
        _, _, key = rest.partition("/")  # bucket, container or host first
        last = "" if not key or key.endswith("/") else key.rsplit("/", 1)[-1]
        return last if "." in last else None

    def scheme(self) -> str:
        return "local" if self.is_local else self.uri.split("://", 1)[0]


class Output(_FromString):
    uri: str | None = Field(None, description="Where the output goes (s3://, gs://, azureml://...); the job's default "
                                              "output location if unset.")

    @field_validator("uri")
    @classmethod
    def _cloud_uri(cls, value: str | None) -> str | None:
        return cloud_location(value, "an output location")


class Metric(_FromString):
    """A metric the cloud should track: a name the entrypoint logs with ``log_metric``, or any
    name with the regex that finds its value in the job's output."""

    name: str = Field(description="The metric's name, e.g. val_loss or 'test:loss'.")
    regex: str | None = Field(None, description="A regex with one group capturing the value, e.g. 'average test loss: ([0-9.]+)'; "
                                                "the runtime's metric line when unset.")
    _string_field: ClassVar[str] = "name"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or len(value) > 255 or any(ord(c) < 32 for c in value):
            raise ValueError(f"{value!r}: a metric name is 1 to 255 printable characters")
        return value

    @model_validator(mode="after")
    def _regex(self) -> "Metric":
        if self.regex is None:
            if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,255}", self.name):
                raise ValueError(f"{self.name!r}: a metric logged with log_metric is named with letters, digits and _ . : / -; "
                                 "give a regex for other names")
            return self
        try:
            groups = re.compile(self.regex).groups
        except re.error as error:
            raise ValueError(f"regex {self.regex!r} is not a valid regular expression: {error}") from None
        if groups < 1:
            raise ValueError(f"regex {self.regex!r} needs a group capturing the value, e.g. 'loss: ([0-9.]+)'")
        return self


class SecretRef(_Model):
    """Where a secret's value is read from at submit/run time. Exactly one source."""

    env: str | None = Field(None, description="Name of an environment variable on the submitting machine.")
    aws_secret: str | None = Field(None, description="AWS Secrets Manager secret id or ARN.")
    azure_key_vault: str | None = Field(None, description="https://<vault>.vault.azure.net/secrets/<name>")
    gcp_secret: str | None = Field(None, description="projects/<p>/secrets/<name>/versions/<v>")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        given = [k for k in ("env", "aws_secret", "azure_key_vault", "gcp_secret") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a secret names exactly one source: env, aws_secret, azure_key_vault or gcp_secret")
        return self


class SweepParameter(_Model):
    """One hyperparameter a sweep varies."""

    type: Literal["float", "int", "categorical"]
    min: float | None = None
    max: float | None = None
    scale: Literal["linear", "log"] = "linear"
    values: list[HyperScalar] | None = Field(None, description="The choices of a categorical parameter.")

    @model_validator(mode="after")
    def _shape(self) -> "SweepParameter":
        if self.type == "categorical":
            if not self.values or self.min is not None or self.max is not None:
                raise ValueError("a categorical parameter gives values: [...] (and no min/max)")
            if self.scale != "linear":
                raise ValueError("scale applies to float and int parameters")
            return self
        if self.values is not None or self.min is None or self.max is None:
            raise ValueError(f"a {self.type} parameter gives min and max (and no values)")
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min >= self.max:
            raise ValueError("min must be below max (finite numbers)")
        if self.scale == "log" and self.min <= 0:
            raise ValueError("a log-scaled parameter needs min > 0")
        if self.type == "int" and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError("an int parameter has whole-number min and max")
        return self


class SweepObjective(_Model):
    metric: str = Field(description="A metric the script logs (log_metric or a metrics: entry).")
    goal: Literal["maximize", "minimize"]


class Sweep(_Model):
    """A hyperparameter sweep: trials of the job with parameters varied (``cloudtrain sweep``)."""

    objective: SweepObjective
    parameters: dict[str, SweepParameter] = Field(min_length=1)
    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    early_stopping: Literal["median", "hyperband", "none"] = "none"
    max_trials: int = Field(10, ge=1, le=10000)
    max_parallel: int = Field(1, ge=1, le=100)
    budget: "Budget | None" = Field(None, description="For the whole sweep: refused (exit 4) when its bound exceeds it.")

    @field_validator("algorithm")
    @classmethod
    def _grid(cls, algorithm: str, info: ValidationInfo) -> str:
        """On the algorithm (so an error points at it), against the parameters validated before it."""
        parameters = info.data.get("parameters") or {}
        floats = [name for name, parameter in parameters.items() if parameter.type == "float"]
        if algorithm == "grid" and floats:
            raise ValueError(f"grid needs a finite set of values, and the float parameter {floats[0]} has none; "
                             "make it categorical (values: [...]) or use algorithm: tpe or random")
        return algorithm


class Bundle(_Model):
    """What of ``code`` is staged with the job (besides what is never staged: VCS, caches, virtual
    environments, ``.gitignore``/``.cloudtrainignore`` exclusions, credential files)."""

    include: list[str] = Field(default_factory=list, description="Glob patterns (relative to code) staged although "
                                                                  "ignored or credential-like, e.g. ['configs/.env.example'].")
    exclude: list[str] = Field(default_factory=list, description="More glob patterns never staged, e.g. ['data/**'].")
    max_mib: float = Field(512, gt=0, description="Refuse a code bundle larger than this many MiB.")


class Budget(_Model):
    max_usd: float = Field(gt=0, description="Refuse to launch when the upper-bound cost exceeds this.")


_NAME = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
HyperScalar = Union[bool, int, float, str]
HyperValue = Union[HyperScalar, list[HyperScalar]]


#: The default of a section (``distribution:``, ``spot:``...) when a spec leaves it out: its empty
#: mapping, validated by the spec's own validator (a ``default_factory`` of the model would build
#: a second validator for each such model on every command).
def _default_section() -> Any:
    return Field(default_factory=dict, validate_default=True)


class JobSpec(_Model):
    """One training job, the same on every cloud."""

    name: str = Field(pattern=_NAME, description="Lowercase letters, digits and '-', at most 40 characters.")
    code: str = Field(description="Directory staged with the job (relative to the spec file).")
    entrypoint: str | None = Field(None, description="Script path inside `code`, e.g. entrypoints/train.py (a .sh script runs under bash).")
    module: str | None = Field(None, description="Python module to run with `python -m`, instead of entrypoint.")
    command: str | None = Field(None, description="A shell command run under bash in the code directory, instead of "
                                                  "entrypoint/module, e.g. 'bash run.sh --epochs 3'.")
    args: list[str] = Field(default_factory=list, description="Arguments of the entrypoint; ${{inputs.NAME}}, ${{model_dir}}... "
                                                              "placeholders become the paths where the job runs.")
    hyperparameters: dict[str, HyperValue] = Field(default_factory=dict)
    hyperparameters_as_args: bool = Field(True, description="Also pass each hyperparameter to the entrypoint as --name value "
                                                            "(after args); false for scripts that read only context().hp().")
    setup: list[str] = Field(default_factory=list, description="Shell commands run in the code directory before the job, "
                                                               "once per node (e.g. a download).")
    requirements: str | None = Field(None, description="A requirements file inside `code` installed before the job on the "
                                                       "clouds (default: requirements.txt when the code has one).")
    framework: Framework | None = None
    image: str | dict[str, str] | None = Field(
        None, description="Container image URI, the same on every cloud, or one per backend ({sagemaker: ..., azureml: "
                          "azureml:AzureML-lightgbm-3.3@latest, vertex: ...}); a backend without one uses `framework`.")
    resources: Resources = _default_section()
    distribution: Distribution = _default_section()
    spot: Spot = _default_section()
    max_runtime: Duration | None = None
    checkpoint: Checkpoint = _default_section()
    inputs: dict[str, Input] = Field(default_factory=dict)
    outputs: dict[str, Output] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: list[Metric] = Field(
        default_factory=list,
        description="Metrics the cloud should track: names the entrypoint logs with log_metric (e.g. val_loss), or "
                    "{name, regex} for a script's own output lines.",
    )
    budget: Budget | None = None
    bundle: Bundle = _default_section()
    sweep: Sweep | None = Field(None, description="Run trials of this job with hyperparameters varied (`cloudtrain sweep`).")
    # Each backend's own section (``sagemaker: {region: ...}``, a plugin's ``toy: {...}``) is a field
    # of the spec model that :func:`cloudtrain.sections.spec_model` builds from the registry.

    @field_validator("args", mode="before")
    @classmethod
    def _args_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_values_as_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if item is None:
                    raise ValueError(f"{key}: no value (write '' for an empty variable)")
                if not isinstance(item, (str, int, float, bool)):
                    raise ValueError(f"{key}: a variable's value is a string or number, not a {type(item).__name__}")
                out[key] = str(item).lower() if isinstance(item, bool) else str(item)
            return out
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No NUL byte anywhere: no file name, argument or variable can hold one."""
        def scan(item: Any, path: str) -> None:
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"{path or 'a value'}: holds a NUL byte")
            if isinstance(item, dict):
                for key, child in item.items():
                    scan(key, path)
                    scan(child, f"{path}.{key}" if path else str(key))
            elif isinstance(item, (list, tuple)):
                for index, child in enumerate(item):
                    scan(child, f"{path}[{index}]")

        scan(value, "")
        return value

    @field_validator("entrypoint", "requirements")
    @classmethod
    def _inside_code(cls, value: str | None) -> str | None:
        from pathlib import PurePosixPath

        if value is not None:
            path = PurePosixPath(value.replace("\\", "/"))
            if not value.strip() or path.is_absolute() or ".." in path.parts:
                raise ValueError(f"{value!r}: a path inside `code`, relative to it (no leading / and no ..)")
        return value


    @field_validator("inputs", "outputs", "env", "secrets")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", str(key)):
                raise ValueError(f"{str(key)[:40]!r}: names are 1 to 128 letters, digits and '_', not starting with a digit")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        given = sum(bool(x) for x in (self.entrypoint, self.module, self.command))
        if given > 1 or (given == 0 and not self.image):
            raise ValueError("give exactly one of 'entrypoint' (a script path), 'module' (a Python module) or 'command' (a shell "
                             "command), or an image whose own entrypoint runs (a built-in algorithm or prebuilt container)")
        if self.command and self.args:
            raise ValueError("'args' go with an entrypoint or module; write them into 'command' itself")

        if self.framework and isinstance(self.image, str):
            raise ValueError("give either 'framework' or 'image', not both (or image per backend, with framework for the others)")
        if self.spot.max_wait and not self.spot.enabled:
            raise ValueError("spot.max_wait is set but spot.enabled is false")
        if self.spot.max_wait and self.max_runtime and self.spot.max_wait < self.max_runtime:
            raise ValueError("spot.max_wait must be at least max_runtime (it includes the run time)")
        overlap = set(self.env) & set(self.secrets)
        if overlap:
            raise ValueError(f"{sorted(overlap)} appear in both env and secrets")
        return self

    @property
    def command_kind(self) -> Literal["script", "module", "command", "container"]:
        """What runs: a script, a module, a shell command, or the container's own entrypoint."""
        if self.entrypoint:
            return "script"
        return "module" if self.module else "command" if self.command else "container"

    def spec_hash(self) -> str:
        """A stable hash of the spec's content (used to recognise resubmissions)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def image_for(self, backend: str) -> str | None:
        """The container image for a backend: the one image, or the backend's entry of the map."""
        return self.image.get(backend) if isinstance(self.image, dict) else self.image

    def cloud_settings(self, cloud: str) -> dict[str, Any]:
        """The backend's validated section of this spec as a dict (empty when it has none)."""
        section = getattr(self, cloud, None) if cloud in type(self).model_fields else None
        return section.model_dump() if isinstance(section, BaseModel) else dict(section or {})


def json_schema(model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The JSON Schema of a job file, for editors (``cloudtrain schema``); ``model`` is the spec
    model with the backends' sections (:func:`cloudtrain.sections.spec_model`)."""
    schema = (model or JobSpec).model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cloudtrain job spec"
    return schema
