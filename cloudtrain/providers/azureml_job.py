"""Building and validating the Azure ML command job (pure: no network, no upload).

The job is the job YAML of the Azure ML CLI v2 schema (``az ml job create -f job.yaml`` accepts it),
built as a plain dict (:func:`job_document`: the document the SDK's own ``command(...)`` entity
dumps, which ``tests/providers/test_azureml_document.py`` checks) and checked against the SDK's
command job schema exported as JSON Schema (:func:`validate_document`), so a dry run never imports
azure-ai-ml; ``submit`` loads it with the SDK (:func:`load_yaml_job`). What it holds:

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

import functools
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


def command_line(plan: "Plan", hps: str | None = None) -> str:
    """The job's command; ``hps``: the launcher's ``--hps`` value instead of the spec's
    hyperparameters (a sweep's, with its search space's placeholders)."""
    spec = plan.spec
    parts = ["python", "-m", "cloudtrain.runtime.launch"]
    for name in spec.inputs:
        parts.append(f"--input {name}=${{{{inputs.{name}}}}}")
    for name in output_names(plan):
        parts.append(f"--output {name}=${{{{outputs.{name}}}}}")
    if hps is None and spec.hyperparameters:
        hps = json.dumps(spec.hyperparameters, sort_keys=True)
    if hps is not None:
        parts.append("--hps " + shlex.quote(hps))
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


def environment(plan: "Plan") -> str | dict[str, str]:
    """The job's ``environment``: a curated or registry environment by name, an inline image, or the
    curated environment of the framework's version (the newest one without a version)."""
    spec = plan.spec
    image = spec.image_for("azureml")
    if image and image.startswith("azureml:"):  # a curated or registry environment, by name
        return image
    if image:
        return {"image": image}
    if spec.framework:
        return curated_environment(spec.framework.name, spec.framework.version)
    raise SpecError("framework: Azure ML needs an environment: give framework {name} (a version too, or the newest) or image",
                    'e.g. framework: {name: pytorch, version: "2.2"}')


#: the spec's input modes -> Azure ML's (the others have no Azure ML counterpart and are not sent)
INPUT_MODES = {"download": "download", "mount": "ro_mount"}


def _input(item: Any) -> dict[str, str]:
    entry = {"mode": INPUT_MODES[item.mode]} if item.mode in INPUT_MODES else {}
    return {**entry, "type": "uri_file" if item.file_name else "uri_folder", "path": item.uri}


def resources(plan: "Plan") -> dict[str, Any]:
    """The job's ``resources``: the node count, the instance type, and ``shm_size`` half the
    instance's memory (at most 64g)."""
    out: dict[str, Any] = {"instance_count": plan.nodes}
    if plan.instance_type:
        out["instance_type"] = plan.instance_type
    if plan.offer is not None and plan.offer.memory_gib:
        out["shm_size"] = f"{max(1, min(64, int(plan.offer.memory_gib // 2)))}g"
    return out


def _output(uri: str | None) -> dict[str, str]:
    return {"mode": "rw_mount", "type": "uri_folder", "path": uri} if uri else {"type": "uri_folder"}


def _distribution(plan: "Plan") -> dict[str, Any] | None:
    kind = plan.spec.distribution.type
    if kind in ("torchrun", "deepspeed"):
        return {"type": "pytorch", "process_count_per_instance": plan.processes_per_node}
    if kind == "mpi":
        return {"type": "mpi", "process_count_per_instance": plan.processes_per_node}
    if kind == "tensorflow":
        return {"type": "tensorflow", "parameter_server_count": plan.spec.distribution.parameter_servers, "worker_count": plan.nodes}
    return None


def job_document(plan: "Plan") -> dict[str, Any]:
    """The job as the Azure ML CLI v2 YAML document (a plain dict, its keys in the order the SDK
    writes them), built without the SDK: ``tests/providers/test_azureml_document.py`` checks it is
    the document the SDK's own ``command(...)`` entity dumps, for every spec the tests render."""
    spec, settings = plan.spec, plan.settings
    document: dict[str, Any] = {
        "$schema": SCHEMA,
        "name": plan.job_name,
        "tags": {**spec.tags, "cloudtrain:job": spec.name, "cloudtrain:submission": plan.submission_token},
        "display_name": spec.name,
        "experiment_name": settings.get("experiment") or spec.name,
    }
    if settings.get("compute"):
        document["compute"] = f"azureml:{settings['compute']}"
    document.update(command=command_line(plan), code=spec.code, environment=environment(plan),
                    environment_variables=environment_variables(plan))
    document["resources"] = resources(plan)
    distribution = _distribution(plan)
    if distribution:
        document["distribution"] = distribution
    if plan.spot:
        document["queue_settings"] = {"job_tier": "spot"}
    document["type"] = "command"
    if plan.max_runtime_seconds:
        document["limits"] = {"timeout": plan.max_runtime_seconds}
    if spec.inputs:
        document["inputs"] = {name: _input(item) for name, item in spec.inputs.items()}
    document["outputs"] = {name: _output(output_location(plan, name)) for name in output_names(plan)}
    return document


def restore_input_paths(inputs: dict[str, Any], plan: "Plan") -> None:
    """Put back each input's own location in a job document's ``inputs``: the SDK's dict writes
    local paths and URLs as ``azureml:<path>``, which its own loader then refuses."""
    for name, item in plan.spec.inputs.items():
        if name in inputs and (item.is_local or not item.uri.startswith("azureml:")):
            inputs[name]["path"] = item.uri


#: The command and sweep jobs' JSON Schemas, exported from the installed SDK's own (marshmallow)
#: schemas by ``scripts/export_sdk_schemas.py`` (``tests/providers/test_sdk_schemas.py`` fails when one differs).
SCHEMA_FILE = Path(__file__).parent / "data" / "azureml_command_job_schema.json"
SWEEP_SCHEMA_FILE = Path(__file__).parent / "data" / "azureml_sweep_job_schema.json"


@functools.lru_cache(maxsize=2)
def _validator(path: Path) -> Any:
    """An exported schema's validator, read once per process."""
    import jsonschema

    return jsonschema.Draft7Validator(json.loads(path.read_text(encoding="utf-8"))["schema"])


def validate_document(document: dict[str, Any], kind: str = "command") -> None:
    """Check a job document (``kind``: ``command`` or ``sweep``) against the SDK's job schema without
    importing the SDK (which takes about a second): the fields, their types, enums, required keys and
    that no other key appears, as the SDK's ``load_job`` checks them. ``submit`` also loads the
    document with the SDK (:func:`load_yaml_job`). Errors name the YAML field (SpecError)."""
    try:
        from jsonschema.exceptions import best_match
    except ModuleNotFoundError:
        from cloudtrain.errors import ProviderNotInstalledError

        raise ProviderNotInstalledError("the azureml backend needs the package 'jsonschema', which is not installed",
                                        "pip install 'cloudtrain[azure]'") from None

    validator = _validator(SWEEP_SCHEMA_FILE if kind == "sweep" else SCHEMA_FILE)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors[:8]:
            detail = best_match(error.context) if error.context else error  # of alternatives, the closest
            where = ".".join(map(str, detail.absolute_path)) or "(the job)"
            lines.append(f"{where}: {detail.message}")
        what = "sweep job" if kind == "sweep" else "job"
        raise SpecError(f"the Azure ML {what} is not valid:\n  " + "\n  ".join(lines),
                        "fix the spec fields behind the job fields named above")


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
