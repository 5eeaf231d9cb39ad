"""Building and validating the Azure ML command job (pure: no network, no upload).

The job is built with the SDK's own entities (``azure.ai.ml.command(...)``) and rendered as the job
YAML of the Azure ML CLI v2 schema (``az ml job create -f job.yaml`` accepts it). What it holds:

- ``command``: cloudtrain's launcher, which turns the bound inputs and outputs into the runtime
  contract's variables, then the entry shim (:mod:`cloudtrain.runtime.entry`), which runs the spec's
  entrypoint with its ``args``::

      python -m cloudtrain.runtime.launch --input data=${{inputs.data}} --output model=${{outputs.model}} \
          --hps '{"lr": 0.001}' -- python cloudtrain/runtime/entry.py

- ``code``: the spec's code directory. ``submit`` uploads it together with ``cloudtrain/runtime``
  (the files of the code bundle, :mod:`cloudtrain.providers.bundle`), so the launcher and the shim
  travel with the job.
- ``environment``: the spec's ``image`` (an inline environment), or Azure ML's curated environment
  for the framework (:data:`CURATED_ENVIRONMENTS`): the one of the same major.minor version, the newest
  without a version; a version or framework without a curated environment is refused (never rounded).
- ``compute``: the configured cluster (``azureml:<compute>``), or serverless compute when no cluster
  is configured, with ``resources.instance_type`` from the plan's offer; ``instance_count`` is the
  number of nodes; ``shm_size`` is half the instance's memory (at most 64g).
- ``distribution``: PyTorch with ``process_count_per_instance`` for ``distribution: torchrun`` and
  ``deepspeed`` (Azure ML starts the processes and sets MASTER_ADDR / RANK / WORLD_SIZE / LOCAL_RANK
  itself), ``type: mpi`` with ``process_count_per_instance`` for ``mpi``, ``type: tensorflow`` with
  ``worker_count`` (one per node) and ``parameter_server_count`` for ``tensorflow`` (Azure ML sets
  ``TF_CONFIG``).
- ``limits.timeout``: ``max_runtime``; ``queue_settings.job_tier: spot`` for spot jobs
  (``spot.max_wait`` has no Azure ML counterpart and is not sent).
- ``inputs``: local paths (uploaded by the SDK at submit), ``azureml://`` and ``https://`` URIs as
  they are; ``uri_file`` for a file, ``uri_folder`` otherwise (a URI ending in ``/`` or without a
  file extension is a folder). ``outputs``: the spec's, plus ``model`` (where the runtime contract
  puts the model), all ``uri_folder``; without a URI Azure ML stores them at
  ``azureml://datastores/workspaceblobstore/paths/azureml/<job>/<output>/``.
- checkpoints: ``checkpoint.dir`` when given (``CLOUDTRAIN_CHECKPOINT_DIR``), else ``./outputs/checkpoints``,
  which Azure ML uploads with the job's outputs. ``metrics`` are not scraped by Azure ML (jobs log
  them with MLflow); they are not sent.
- ``tags``: the spec's, plus ``cloudtrain:job`` and ``cloudtrain:submission`` (the plan's token);
  ``experiment_name``: ``azureml.experiment``, default the spec's name; ``name``: the plan's job name.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
ENTRY_PROGRAM = "cloudtrain/runtime/entry.py"
MODEL_OUTPUT = "model"
#: (framework, major.minor) -> Azure ML curated training environment in the ``azureml`` registry. Names
#: from Azure/azureml-assets (``assets/training/general/environments/<name>``: acpt-pytorch-2.2-cuda12.1,
#: acpt-pytorch-2.8-cuda12.6, sklearn-1.5, tensorflow-2.16-cuda12) and the curated environments page
#: (https://learn.microsoft.com/azure/machine-learning/resource-curated-environments). Azure ML has no
#: curated XGBoost or Hugging Face Transformers training environment (its LightGBM one is another
#: framework): those are refused here; give ``image: {azureml: ...}`` with a requirements file instead.
CURATED_ENVIRONMENTS: dict[tuple[str, str], str] = {
    ("pytorch", "2.2"): "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/43",
    ("pytorch", "2.8"): "azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest",
    ("sklearn", "1.5"): "azureml://registries/azureml/environments/sklearn-1.5/versions/54",
    ("tensorflow", "2.16"): "azureml://registries/azureml/environments/tensorflow-2.16-cuda12/labels/latest",
}
URI_SCHEMES = ("azureml://", "https://", "wasbs://", "abfss://")
CHECKPOINT_OUTPUT = "checkpoints"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2]) or (0,)


def curated_environment(framework: str, version: str | None) -> str:
    """The curated environment of the framework's major.minor version (the newest one without a
    version); a version Azure ML has no environment for is refused with the versions it has, never
    replaced by another."""
    known = sorted((_version_key(v), v, uri) for (name, v), uri in CURATED_ENVIRONMENTS.items() if name == framework)
    if not known:
        frameworks = sorted({name for name, _ in CURATED_ENVIRONMENTS})
        raise SpecError(f"framework.name: Azure ML has no curated {framework} environment",
                        f"curated frameworks: {', '.join(frameworks)}; or give image: {{azureml: ...}} (an image or azureml: environment)")
    if version is None:
        return known[-1][2]
    for key, _, uri in known:
        if key == _version_key(version):
            return uri
    raise SpecError(f"framework.version: Azure ML has no curated {framework} {version} environment",
                    f"versions it has: {', '.join(v for _, v, _ in known)}; or give image: {{azureml: ...}}")


def workspace(plan: "Plan") -> dict[str, str]:
    return {key: plan.settings[key] for key in ("subscription_id", "resource_group", "workspace")}


def environment_variables(plan: "Plan") -> dict[str, str]:
    from cloudtrain.providers.bundle import entry_environment

    from cloudtrain.providers.distribution import distribution_environment

    env = entry_environment(plan)
    env.update(distribution_environment(plan))
    if plan.spec.checkpoint.enabled and plan.spec.checkpoint.dir:
        env["CLOUDTRAIN_CHECKPOINT_DIR"] = plan.spec.checkpoint.dir
    return env


def command_line(plan: "Plan") -> str:
    spec = plan.spec
    parts = ["python", "-m", "cloudtrain.runtime.launch"]
    for name in spec.inputs:
        parts.append(f"--input {name}=${{{{inputs.{name}}}}}")
    for name in output_names(plan):
        parts.append(f"--output {name}=${{{{outputs.{name}}}}}")
    if spec.hyperparameters:
        parts.append("--hps " + shlex.quote(json.dumps(spec.hyperparameters, sort_keys=True)))
    parts += ["--", "python", ENTRY_PROGRAM]
    return " ".join(parts)


def output_names(plan: "Plan") -> list[str]:
    names = list(plan.spec.outputs)
    names = names if MODEL_OUTPUT in names else [*names, MODEL_OUTPUT]
    if plan.spec.checkpoint.enabled and plan.spec.checkpoint.uri and CHECKPOINT_OUTPUT not in names:
        names.append(CHECKPOINT_OUTPUT)  # a fixed location: a resubmitted job finds its checkpoints there
    return names


def output_location(plan: "Plan", name: str) -> str | None:
    if name in plan.spec.outputs:
        return plan.spec.outputs[name].uri
    return plan.spec.checkpoint.uri if name == CHECKPOINT_OUTPUT else None


def build_job(plan: "Plan", code: str | None = None) -> Any:
    """The SDK's command job entity for ``plan`` (``code`` replaces the spec's code directory)."""
    from azure.ai.ml import Input, MpiDistribution, Output, PyTorchDistribution, TensorFlowDistribution, command
    from azure.ai.ml.entities import Environment, JobResourceConfiguration, QueueSettings

    spec, settings = plan.spec, plan.settings
    image = spec.image_for("azureml")
    if image and image.startswith("azureml:"):  # a curated or registry environment, by name
        environment: Any = image
    elif image:
        environment = Environment(image=image)
    elif spec.framework:  # the curated environment of the version, or the newest one without a version
        environment = curated_environment(spec.framework.name, spec.framework.version)
    else:
        raise SpecError("framework: Azure ML needs an environment: give framework {name, version} or image",
                        'e.g. framework: {name: pytorch, version: "2.2"}')
    inputs = {name: Input(type="uri_file" if item.file_name else "uri_folder", path=item.uri,
                          **({"mode": {"download": "download", "mount": "ro_mount"}[item.mode]} if item.mode in ("download", "mount") else {}))
              for name, item in spec.inputs.items()}
    outputs = {}
    for name in output_names(plan):
        uri = output_location(plan, name)
        outputs[name] = Output(type="uri_folder", path=uri, mode="rw_mount") if uri else Output(type="uri_folder")
    resources: dict[str, Any] = {"instance_count": plan.nodes}
    if plan.instance_type:
        resources["instance_type"] = plan.instance_type
    if plan.offer is not None and plan.offer.memory_gib:
        resources["shm_size"] = f"{max(1, min(64, int(plan.offer.memory_gib // 2)))}g"
    tags = {**spec.tags, "cloudtrain:job": spec.name, "cloudtrain:submission": plan.submission_token}
    kwargs: dict[str, Any] = dict(
        name=plan.job_name,
        display_name=spec.name,
        experiment_name=settings.get("experiment") or spec.name,
        tags=tags,
        code=code or spec.code,
        command=command_line(plan),
        environment=environment,
        environment_variables=environment_variables(plan),
        inputs=inputs,
        outputs=outputs,
        instance_count=plan.nodes,
        resources=JobResourceConfiguration(**resources),
    )
    if settings.get("compute"):
        kwargs["compute"] = f"azureml:{settings['compute']}"
    kind = spec.distribution.type
    if kind in ("torchrun", "deepspeed"):
        kwargs["distribution"] = PyTorchDistribution(process_count_per_instance=plan.processes_per_node)
    elif kind == "mpi":
        kwargs["distribution"] = MpiDistribution(process_count_per_instance=plan.processes_per_node)
    elif kind == "tensorflow":
        kwargs["distribution"] = TensorFlowDistribution(worker_count=plan.nodes,
                                                        parameter_server_count=spec.distribution.parameter_servers)
    if plan.max_runtime_seconds:
        kwargs["timeout"] = plan.max_runtime_seconds
    if plan.spot:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs["queue_settings"] = QueueSettings(job_tier="spot")
    return command(**kwargs)


def build_yaml(plan: "Plan") -> dict[str, Any]:
    """The job as the Azure ML CLI v2 YAML document (a plain dict, keys in the SDK's order)."""
    import warnings

    with warnings.catch_warnings():  # the SDK's schemas use deprecated marshmallow features
        warnings.simplefilter("ignore")
        document = json.loads(json.dumps(build_job(plan)._to_job()._to_dict()))
    if isinstance(document.get("environment"), dict):  # an inline image: no anonymous name/version
        document["environment"] = {"image": document["environment"]["image"]}
    for key in ("properties", "parameters", "inputs", "outputs"):
        if not document.get(key):
            document.pop(key, None)
    resources = document.get("resources", {})
    if not resources.get("properties"):
        resources.pop("properties", None)
    restore_input_paths(document.get("inputs") or {}, plan)
    return {"$schema": SCHEMA, **document}


def restore_input_paths(inputs: dict[str, Any], plan: "Plan") -> None:
    """Put back each input's own location in a job document's ``inputs``: the SDK's dict writes
    local paths and URLs as ``azureml:<path>``, which its own loader then refuses."""
    for name, item in plan.spec.inputs.items():
        if name in inputs and (item.is_local or not item.uri.startswith("azureml:")):
            inputs[name]["path"] = item.uri


def _field_errors(result: Any) -> list[str]:
    return [f"{path}: {message}" for path, message in (result.error_messages or {}).items()]


def _summarize(text: str) -> list[str]:
    """``field: message`` lines from the SDK's (nested, JSON-in-text) schema validation errors."""
    flat = text
    for _ in range(3):
        flat = flat.replace("\\n", "\n").replace('\\"', '"')
    found = []
    for field, message in re.findall(r'"([A-Za-z_][\w.]*)":\s*\[\s*(?:\{\s*"_schema":\s*\[\s*)?"([^"]+)"', flat):
        line = f"{field}: {message.strip()}"
        if line not in found:
            found.append(line)
    named = [line for line in found if not line.startswith("_schema:")]  # the schema's alternatives add nothing
    return named or found or [" ".join(text.split())[:800]]


def load_yaml_job(document: dict[str, Any], base_dir: str | Path | None = None, overrides: list[dict[str, Any]] | None = None) -> Any:
    """Load a job YAML document with the SDK (schema validation), then validate the entity as
    ``MLClient.jobs.validate`` does (no network). Errors name the YAML field (SpecError)."""
    import warnings

    import yaml
    from azure.ai.ml import load_job
    from azure.ai.ml.exceptions import ValidationException
    from marshmallow import ValidationError

    text = yaml.safe_dump(document, sort_keys=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            job = load_job(io.StringIO(text), relative_origin=str(Path(base_dir) / "job.yaml") if base_dir else None, params_override=overrides or [])
            result = job._validate(raise_error=False)
            if result.passed:  # the command job's own checks (bindings to undeclared inputs/outputs) raise
                try:
                    job._to_job()._validate()
                except ValidationException as error:
                    raise SpecError(f"the Azure ML job is not valid:\n  command: {error}",
                                    "fix the spec fields behind the job fields named above") from None
        except (ValidationException, ValidationError) as error:
            raise SpecError("the Azure ML job is not valid:\n  " + "\n  ".join(_summarize(str(error))),
                            "fix the spec fields behind the job fields named above") from None
    if not result.passed:
        raise SpecError("the Azure ML job is not valid:\n  " + "\n  ".join(_field_errors(result)),
                        "fix the spec fields behind the job fields named above")
    return job
