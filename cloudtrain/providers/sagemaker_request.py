"""Building and validating the SageMaker ``CreateTrainingJob`` request (pure: no network).

The request is exactly the keyword arguments of boto3's ``create_training_job`` (the JSON that
``aws sagemaker create-training-job --cli-input-json`` accepts). Script mode as the SageMaker
framework containers run it: the code bundle's S3 location in the ``sagemaker_submit_directory``
hyperparameter and the program in ``sagemaker_program``, which is cloudtrain's entry shim
(:mod:`cloudtrain.runtime.entry`), so the entrypoint gets the spec's ``args`` and nothing else.

Staging layout in the configured bucket (``<prefix>`` is ``sagemaker.prefix``, default cloudtrain):
``s3://<bucket>/<prefix>/<job>/source/sourcedir.tar.gz`` (code), ``.../<job>/input/<name>/``
(local inputs), ``.../<job>/checkpoints/`` (CheckpointConfig), and ``s3://<bucket>/<prefix>/output``
as the output path (SageMaker writes ``<job>/output/model.tar.gz`` under it).

Values left to SageMaker's defaults are noted: without ``max_runtime`` the job gets SageMaker's
default limit of one day (and the estimate has no upper bound).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import SpecError
from cloudtrain.runtime.context import metric_regex

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

SHAPES = Path(__file__).resolve().parent / "data" / "sagemaker_shapes.json"
DEFAULT_MAX_RUNTIME_SECONDS = 86400
DEFAULT_CHECKPOINT_DIR = "/opt/ml/checkpoints"
ENTRY_PROGRAM = "cloudtrain/runtime/entry.py"
#: Azure ML's input modes, as SageMaker's nearest ones.
INPUT_MODES = {"download": "File", "mount": "FastFile"}


def output_uri(plan: "Plan") -> str | None:
    """The one S3 location the spec's outputs name (SageMaker writes every output under one path)."""
    uris = sorted({o.uri for o in plan.spec.outputs.values() if o.uri})
    if len(uris) > 1:
        raise SpecError(f"outputs: SageMaker writes all of a job's outputs under one S3OutputPath; the spec names {len(uris)} "
                        f"({', '.join(uris)})", "give the same s3:// URI to every output, or one output a URI")
    if uris and not uris[0].startswith("s3://"):
        raise SpecError(f"outputs: {uris[0]} is not an s3:// location, which SageMaker needs", "give an s3://bucket/prefix URI")
    return uris[0] if uris else None


def staging(plan: "Plan") -> dict[str, Any]:
    bucket, prefix = plan.settings["bucket"], plan.settings.get("prefix", "cloudtrain").strip("/")
    base = f"s3://{bucket}/{prefix}/{plan.job_name}"
    checkpoint = plan.spec.checkpoint.uri
    if checkpoint and not checkpoint.startswith("s3://"):
        raise SpecError(f"checkpoint.uri: {checkpoint} is not an s3:// location, which SageMaker needs", "give an s3://bucket/prefix URI")
    return {
        "code": f"{base}/source/sourcedir.tar.gz",
        "inputs": {name: f"{base}/input/{name}/" for name, item in plan.spec.inputs.items() if item.is_local},
        "checkpoints": checkpoint or f"{base}/checkpoints/",
        "output": output_uri(plan) or f"s3://{bucket}/{prefix}/output",
    }


def training_image(plan: "Plan") -> str:
    """The spec's image, or the SageMaker framework training image for the region and instance,
    resolved offline from the image data the sagemaker SDK ships (:mod:`cloudtrain.providers.sagemaker_images`;
    without a framework version, the newest)."""
    spec = plan.spec
    if spec.image_for("sagemaker"):
        return spec.image_for("sagemaker") or ""
    if spec.framework is None:
        raise SpecError("framework: SageMaker needs a container: give framework {name} (a version too, or the newest) or image",
                        'e.g. framework: {name: pytorch, version: "2.5"}')
    from cloudtrain.providers.sagemaker_images import training_image_uri

    framework = spec.framework
    return training_image_uri(framework.name, region=plan.region or "", instance_type=plan.instance_type or "",
                              version=framework.version, python=framework.python,
                              base_framework=framework.base_framework).uri


def _hyperparameter(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def environment(plan: "Plan") -> dict[str, str]:
    from cloudtrain.providers.bundle import entry_environment

    from cloudtrain.providers.distribution import distribution_environment

    env = entry_environment(plan)
    env.update(distribution_environment(plan))
    if plan.spec.checkpoint.enabled:
        env["CLOUDTRAIN_CHECKPOINT_DIR"] = plan.spec.checkpoint.dir or DEFAULT_CHECKPOINT_DIR
    return env


def distribution_hyperparameters(plan: "Plan") -> dict[str, str]:
    """The framework containers' launch options (the keys the SageMaker SDK's estimators write for
    ``distribution=``): torch distributed (torchrun, deepspeed), MPI (processes per host and extra
    mpirun options), TensorFlow's MultiWorkerMirrored or parameter-server option, and the
    data-parallel library (smddp). Checked at plan time by
    :func:`cloudtrain.providers.distribution.check_distribution`."""
    import shlex

    dist = plan.spec.distribution
    out: dict[str, str] = {}
    if dist.type in ("torchrun", "deepspeed") and not dist.smddp:
        out["sagemaker_torch_distributed_enabled"] = "true"
    elif dist.type == "mpi":
        out.update(sagemaker_mpi_enabled="true", sagemaker_mpi_num_of_processes_per_host=str(plan.processes_per_node))
        if dist.mpi_options:
            out["sagemaker_mpi_custom_mpi_options"] = shlex.join(dist.mpi_options)
    elif dist.type == "tensorflow":
        if dist.parameter_servers:
            out["sagemaker_parameter_server_enabled"] = "true"
        else:
            out["sagemaker_multi_worker_mirrored_strategy_enabled"] = "true"
    if plan.pools and out:  # a heterogeneous cluster: the first pool runs the distributed training
        out["sagemaker_distribution_instance_groups"] = json.dumps([plan.pools[0][0]])
    if dist.smddp:
        out["sagemaker_distributed_dataparallel_enabled"] = "true"
        out["sagemaker_instance_type"] = plan.instance_type or ""
    return out


def build_request(plan: "Plan") -> dict[str, Any]:
    spec, where = plan.spec, staging(plan)
    hyperparameters = {key: _hyperparameter(value) for key, value in spec.hyperparameters.items()}
    container = spec.command_kind == "container"  # a built-in algorithm: its own entrypoint, its own hyperparameters
    if not container:
        hyperparameters.update({
            "sagemaker_program": ENTRY_PROGRAM,
            "sagemaker_submit_directory": where["code"],
            "sagemaker_region": plan.region or "",
            "sagemaker_container_log_level": "20",
        })
        hyperparameters.update(distribution_hyperparameters(plan))
    channels = []
    for name, item in spec.inputs.items():
        uri = where["inputs"][name] if item.is_local else item.uri
        channel: dict[str, Any] = {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": item.distribution or "FullyReplicated"}},
            "InputMode": INPUT_MODES.get(item.mode or "File", item.mode or "File"),
        }
        if item.content_type:
            channel["ContentType"] = item.content_type
        channels.append(channel)
    algorithm: dict[str, Any] = {"TrainingImage": training_image(plan), "TrainingInputMode": "File"}
    if spec.metrics:
        algorithm["MetricDefinitions"] = [{"Name": m.name, "Regex": m.regex or metric_regex(m.name)} for m in spec.metrics]
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": plan.max_runtime_seconds or DEFAULT_MAX_RUNTIME_SECONDS}
    if plan.spot:
        stopping["MaxWaitTimeInSeconds"] = plan.max_wait_seconds or 2 * stopping["MaxRuntimeInSeconds"]
    tags = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    tags += [{"Key": "cloudtrain:job", "Value": spec.name}, {"Key": "cloudtrain:submission", "Value": plan.submission_token}]
    request: dict[str, Any] = {
        "TrainingJobName": plan.job_name,
        "RoleArn": plan.settings["role_arn"],
        "AlgorithmSpecification": algorithm,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": {"S3OutputPath": where["output"]},
        "ResourceConfig": {"InstanceType": plan.instance_type, "InstanceCount": plan.nodes, "VolumeSizeInGB": spec.resources.disk_gib},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": plan.spot,
        "Environment": dict(spec.env) if container else environment(plan),
        "Tags": tags,
    }
    if plan.pools:  # resources.pools: one instance group each (channels reach every group)
        request["ResourceConfig"] = {"InstanceGroups": [{"InstanceType": offer.instance_type, "InstanceCount": nodes,
                                                         "InstanceGroupName": name} for name, nodes, offer in plan.pools],
                                     "VolumeSizeInGB": spec.resources.disk_gib}
    if channels:
        request["InputDataConfig"] = channels
    if spec.checkpoint.enabled:
        request["CheckpointConfig"] = {"S3Uri": where["checkpoints"], "LocalPath": spec.checkpoint.dir or DEFAULT_CHECKPOINT_DIR}
    return request


@functools.lru_cache(maxsize=None)
def _pattern(pattern: str) -> Any:
    """Service-model patterns use Java syntax (``\\p{L}``...), which the ``regex`` package reads."""
    import regex

    return regex.compile(pattern, flags=regex.DOTALL)


def _strict_errors(shape: Any, value: Any, path: str) -> list[str]:
    """What botocore's own validation skips: enums, patterns and maximums of the service model."""
    errors, meta = [], shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                errors += _strict_errors(shape.members[key], item, f"{path}.{key}".lstrip("."))
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, at most {meta['max']} allowed")
        for index, item in enumerate(value):
            errors += _strict_errors(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} entries, at most {meta['max']} allowed")
        for key, item in value.items():
            errors += _strict_errors(shape.key, key, f"{path} key {key!r}")
            errors += _strict_errors(shape.value, item, f"{path}[{key!r}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of the {len(shape.enum)} values SageMaker accepts")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, at most {meta['max']} allowed")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            errors.append(f"{path}: {value[:80]!r} does not match the pattern {meta['pattern']}")
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is above the maximum {meta['max']}")
    return errors


@functools.lru_cache(maxsize=None)
def _shapes() -> Any:
    """botocore's resolver over the shapes of ``data/sagemaker_shapes.json``: the sagemaker service
    model's input shapes of the operations cloudtrain renders, exported from the installed botocore by
    ``scripts/export_sdk_schemas.py`` (``tests/providers/test_sdk_schemas.py`` fails when they differ),
    so a dry run does not load botocore's session and the whole service model."""
    from botocore.model import ShapeResolver

    data = json.loads(SHAPES.read_text())
    return ShapeResolver(data["shapes"]), data["inputs"]


def input_shape(operation: str) -> Any:
    """The input shape of ``CreateTrainingJob`` or ``CreateHyperParameterTuningJob``."""
    resolver, inputs = _shapes()
    return resolver.get_shape_by_name(inputs[operation])


def validate(request: dict[str, Any], operation: str) -> None:
    """Validate against the operation's input shape in the service model botocore ships: botocore's
    ParamValidator (required, types, unknown keys, minimums) and what it skips (enums, patterns,
    maximums). Errors name the field."""
    from botocore.validate import ParamValidator

    shape = input_shape(operation)
    report = ParamValidator().validate(request, shape)
    problems = [line.strip() for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    problems += _strict_errors(shape, request, "")
    if problems:
        raise SpecError(f"the SageMaker {operation} request is not valid:\n  " + "\n  ".join(problems),
                        "fix the spec fields behind the request fields named above")


def validate_request(request: dict[str, Any]) -> None:
    """The ``CreateTrainingJob`` request, validated as :func:`validate` says."""
    validate(request, "CreateTrainingJob")
