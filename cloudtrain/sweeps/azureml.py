"""A sweep as an Azure ML sweep job (pure: no network, and no SDK import for a dry run).

The document (:func:`sweep_document`) is the sweep job YAML of the Azure ML CLI v2, built as a plain
dict around the command job the Azure ML provider builds
(:func:`cloudtrain.providers.azureml_job.job_document`), and checked against azure-ai-ml's own
``SweepJobSchema`` exported as JSON Schema (``azureml_job.validate_document(..., kind="sweep")``);
``submit`` loads it with the SDK's ``load_job`` (:func:`sweep_job_for_submit`). Float parameters are
``uniform`` / ``loguniform``, ints ``quniform`` with ``q: 1`` (log-scaled ints are refused: Azure
has no log-scaled integer distribution), categoricals ``choice``. ``loguniform`` takes natural-log
bounds: ``min_value = ln(min)``, ``max_value = ln(max)``. Algorithms: ``tpe`` -> ``bayesian``
(Azure's Bayesian sampling takes no early termination policy: refused with median), ``random``,
``grid`` (``choice`` parameters only). Early stopping: ``median`` -> ``median_stopping``;
``hyperband`` -> ``bandit`` (slack 0.1 each evaluation: Azure ML has no Hyperband, and the bandit
policy is its closest rule: say so). Each trial's values reach the script through the launcher's
``--hps`` JSON, where Azure ML fills in ``${{search_space.NAME}}``; a search space name takes
letters, digits and underscores only, so ``batch-size`` is ``batch_size`` there and still
``--batch-size`` to the script.

Azure ML reads a sweep's primary metric from MLflow: the runtime's ``context().log_metric`` also
calls ``mlflow.log_metric`` on Azure ML when the job's environment has ``mlflow`` (the curated
environments carry ``mlflow`` and ``azureml-mlflow``); a custom environment needs them installed.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import UnsupportedFeatureError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.spec import Sweep


SCHEMA = "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json"


def check(sweep: "Sweep") -> None:
    if sweep.algorithm == "tpe" and sweep.early_stopping != "none":
        raise UnsupportedFeatureError("sweep.early_stopping: Azure ML's Bayesian sampling (algorithm: tpe) takes no early "
                                      "termination policy", "use algorithm: random with early stopping, or early_stopping: none")
    for name, parameter in sweep.parameters.items():
        if sweep.algorithm == "grid" and parameter.type != "categorical":
            raise UnsupportedFeatureError(f"sweep.parameters.{name}: Azure ML's grid sampling takes Choice (categorical) "
                                          "parameters only", "make it categorical (values: [...])")
        if parameter.type == "int" and parameter.scale == "log":
            raise UnsupportedFeatureError(f"sweep.parameters.{name}: Azure ML has no log-scaled integer distribution",
                                          "use scale: linear, or a float parameter")
    names: dict[str, str] = {}
    for name in sweep.parameters:
        other = names.setdefault(space_name(name), name)
        if other != name:
            raise UnsupportedFeatureError(f"sweep.parameters: {other} and {name} are both {space_name(name)} in Azure ML's search "
                                          "space, whose names take letters, digits and underscores only", "rename one of them")


def space_name(name: str) -> str:
    """The parameter's name in the search space: Azure ML takes letters, digits and underscores
    (``batch-size`` -> ``batch_size``); the trial's script still gets it under its own name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def search_space(sweep: "Sweep") -> dict[str, Any]:
    """The sweep's ``search_space``, as the SDK's distributions write it."""
    space: dict[str, Any] = {}
    for key, parameter in sweep.parameters.items():
        name = space_name(key)
        if parameter.type == "categorical":
            space[name] = {"values": list(parameter.values or []), "type": "choice"}
        elif parameter.type == "int":
            space[name] = {"type": "quniform", "min_value": int(parameter.min or 0), "max_value": int(parameter.max or 0), "q": 1}
        elif parameter.scale == "log":
            space[name] = {"type": "loguniform", "min_value": math.log(parameter.min or 1), "max_value": math.log(parameter.max or 1)}
        else:
            space[name] = {"type": "uniform", "min_value": float(parameter.min or 0), "max_value": float(parameter.max or 0)}
    return space


def early_termination(sweep: "Sweep") -> dict[str, Any] | None:
    """The sweep's ``early_termination`` policy, as the SDK's policies write it."""
    if sweep.early_stopping == "median":
        return {"evaluation_interval": 1, "delay_evaluation": 1, "type": "median_stopping"}
    if sweep.early_stopping == "hyperband":
        return {"evaluation_interval": 1, "delay_evaluation": 1, "type": "bandit", "slack_factor": 0.1}
    return None


def sweep_document(plan: "Plan", sweep: "Sweep") -> dict[str, Any]:
    """The sweep job as the Azure ML CLI v2 YAML document (a plain dict, its keys in the order the
    SDK writes them), built without the SDK from the provider's command job
    (:func:`~cloudtrain.providers.azureml_job.job_document`): its identity, compute, queue settings,
    inputs and outputs are the sweep's; its command, code, environment, variables, resources and
    distribution are the trial's. ``tests/providers/test_azureml_sweep_document.py`` checks it is the
    document the SDK's own ``command(...).sweep(...)`` dumps."""
    from cloudtrain.providers.azureml_job import command_line, job_document
    from cloudtrain.sweeps.space import check_reported_objective

    check(sweep)
    check_reported_objective(plan.spec, sweep, "Azure ML", "as the job logs it to MLflow")
    job = job_document(plan)
    document: dict[str, Any] = {"$schema": SCHEMA, **{key: job[key] for key in ("name", "display_name", "experiment_name", "tags")},
                                "sampling_algorithm": {"tpe": "bayesian"}.get(sweep.algorithm, sweep.algorithm),
                                "search_space": search_space(sweep),
                                "objective": {"goal": sweep.objective.goal, "primary_metric": sweep.objective.metric}}
    policy = early_termination(sweep)
    if policy:
        document["early_termination"] = policy
    document["limits"] = {"max_concurrent_trials": sweep.max_parallel, "max_total_trials": sweep.max_trials}
    if plan.max_runtime_seconds:
        document["limits"]["trial_timeout"] = plan.max_runtime_seconds
    if "queue_settings" in job:
        document["queue_settings"] = job["queue_settings"]
    inputs = {name: item for name, item in (job.get("inputs") or {}).items() if name not in sweep.parameters}
    if inputs:
        document["inputs"] = inputs
    document.update(outputs=job["outputs"], type="sweep")
    if "compute" in job:
        document["compute"] = job["compute"]
    trial = {"command": command_line(plan, hps=_hps_template(plan, sweep)),
             **{key: job[key] for key in ("code", "environment", "environment_variables", "resources", "distribution") if key in job}}
    if "environment_variables" in trial:
        from cloudtrain.sweeps.space import with_objective

        trial["environment_variables"] = with_objective(trial["environment_variables"], sweep)
    document["trial"] = trial
    return document


def _hps_template(plan: "Plan", sweep: "Sweep") -> str:
    """The launcher's ``--hps`` JSON with each swept value as ``${{search_space.NAME}}`` (what Azure
    ML fills in per trial), so ``context().hp()`` gives the trial's value."""
    import json

    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(plan.spec.hyperparameters.items()) if k not in sweep.parameters]
    for name, parameter in sweep.parameters.items():
        textual = parameter.type == "categorical" and any(isinstance(v, str) for v in parameter.values or [])
        value = f"${{{{search_space.{space_name(name)}}}}}"
        parts.append(f"{json.dumps(name)}: " + (f'"{value}"' if textual else value))
    return "{" + ", ".join(parts) + "}"


def sweep_job_for_submit(document: dict[str, Any], code_dir: Any) -> Any:
    """The SDK's ``SweepJob`` of the YAML with its trial's code at ``code_dir`` (the staged bundle)."""
    return validate_yaml({**document, "trial": {**document["trial"], "code": str(code_dir)}})


def validate_yaml(document: dict[str, Any], base_dir: Any = None) -> Any:
    """Load the YAML with the SDK's ``load_job`` (its sweep job schema), then build its REST object
    as ``MLClient.jobs.create_or_update`` would (no network). Errors name the YAML field."""
    import io
    import warnings
    from pathlib import Path

    import yaml
    from azure.ai.ml import load_job
    from azure.ai.ml.exceptions import ValidationException
    from marshmallow import ValidationError

    from cloudtrain.errors import SpecError
    from cloudtrain.providers.azureml_job import _summarize

    text = yaml.safe_dump(document, sort_keys=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            job = load_job(io.StringIO(text), relative_origin=str(Path(base_dir) / "sweep.yaml") if base_dir else None)
            job._to_rest_object()
        except (ValidationException, ValidationError) as error:
            raise SpecError("the Azure ML sweep job is not valid:\n  " + "\n  ".join(_summarize(str(error))),
                            "fix the spec fields behind the job fields named above") from None
    return job
