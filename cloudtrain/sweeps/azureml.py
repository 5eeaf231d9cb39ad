"""A sweep as an Azure ML sweep job, built with azure-ai-ml's own entities (pure: no network).

The trial is the command job the Azure ML provider builds (:func:`cloudtrain.providers.azureml_job.job_document`,
loaded as the SDK's entity), swept with ``.sweep(...)``: float parameters are ``Uniform`` / ``LogUniform``, ints ``QUniform(q=1)``
(log-scaled ints are refused: Azure has no log-scaled integer distribution), categoricals
``Choice``. ``LogUniform`` takes natural-log bounds: ``min_value = ln(min)``, ``max_value = ln(max)``.
Algorithms: ``tpe`` -> ``bayesian`` (Azure's Bayesian sampling takes no early termination policy:
refused with median), ``random``, ``grid`` (``Choice`` parameters only). Early stopping:
``median`` -> ``MedianStoppingPolicy``; ``hyperband`` -> ``BanditPolicy`` (slack 0.1 each
evaluation: Azure ML has no Hyperband, and the bandit policy is its closest rule: say so).
The job is rendered as YAML and loaded back with ``load_job`` (the SDK's schema validation).

Azure ML reads a sweep's primary metric from MLflow: the runtime's ``context().log_metric`` also
calls ``mlflow.log_metric`` on Azure ML when the job's environment has ``mlflow`` (the curated
environments carry ``mlflow`` and ``azureml-mlflow``); a custom environment needs them installed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import UnsupportedFeatureError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.spec import Sweep


_TRIAL_KEYS = ("command", "code", "environment", "environment_variables", "distribution", "resources")


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


def search_space(sweep: "Sweep") -> dict[str, Any]:
    from azure.ai.ml.sweep import Choice, LogUniform, QUniform, Uniform

    space: dict[str, Any] = {}
    for name, parameter in sweep.parameters.items():
        if parameter.type == "categorical":
            space[name] = Choice(values=list(parameter.values or []))
        elif parameter.type == "int":
            space[name] = QUniform(min_value=int(parameter.min or 0), max_value=int(parameter.max or 0), q=1)
        elif parameter.scale == "log":
            space[name] = LogUniform(min_value=math.log(parameter.min or 1), max_value=math.log(parameter.max or 1))
        else:
            space[name] = Uniform(min_value=float(parameter.min or 0), max_value=float(parameter.max or 0))
    return space


def early_termination(sweep: "Sweep") -> Any:
    from azure.ai.ml.sweep import BanditPolicy, MedianStoppingPolicy

    if sweep.early_stopping == "median":
        return MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=1)
    if sweep.early_stopping == "hyperband":
        return BanditPolicy(slack_factor=0.1, evaluation_interval=1, delay_evaluation=1)
    return None


def build_sweep_job(plan: "Plan", sweep: "Sweep") -> Any:
    from cloudtrain.providers.azureml_job import job_document, load_yaml_job
    from cloudtrain.sweeps.space import check_reported_objective

    check(sweep)
    check_reported_objective(plan.spec, sweep, "Azure ML", "as the job logs it to MLflow")
    command_job = load_yaml_job(job_document(plan))
    swept = {name: plan.spec.hyperparameters.get(name, _default(parameter)) for name, parameter in sweep.parameters.items()}
    command_job = _with_swept_inputs(command_job, swept,
                                     command_job.command.replace(_static_hps(plan.spec.hyperparameters), _hps_template(plan, sweep)))
    trial = command_job(**search_space(sweep))
    sweep_job = trial.sweep(sampling_algorithm={"tpe": "bayesian"}.get(sweep.algorithm, sweep.algorithm),
                            primary_metric=sweep.objective.metric, goal=sweep.objective.goal.capitalize(),
                            early_termination_policy=early_termination(sweep))
    sweep_job.set_limits(max_total_trials=sweep.max_trials, max_concurrent_trials=sweep.max_parallel,
                         trial_timeout=plan.max_runtime_seconds)
    sweep_job.name, sweep_job.display_name = plan.job_name, plan.spec.name
    sweep_job.experiment_name = command_job.experiment_name
    return sweep_job


def _with_swept_inputs(job: Any, swept: dict[str, Any], command_line: str) -> Any:
    """The provider's command job again, with an input per swept parameter and the command using them."""
    from azure.ai.ml import command

    kwargs: dict[str, Any] = dict(name=job.name, display_name=job.display_name, experiment_name=job.experiment_name,
                                  tags=job.tags, code=job.code, command=command_line, environment=job.environment,
                                  environment_variables=job.environment_variables,
                                  inputs={**{k: v._data if hasattr(v, "_data") else v for k, v in job.inputs.items()}, **swept},
                                  outputs={k: v._data if hasattr(v, "_data") else v for k, v in job.outputs.items()},
                                  resources=job.resources, compute=job.compute, distribution=job.distribution)
    if job.limits is not None and job.limits.timeout:
        kwargs["timeout"] = job.limits.timeout
    if job.queue_settings is not None:
        kwargs["queue_settings"] = job.queue_settings
    return command(**{k: v for k, v in kwargs.items() if v is not None})


def _default(parameter: Any) -> Any:
    if parameter.type == "categorical":
        return (parameter.values or [None])[0]
    return int(parameter.min) if parameter.type == "int" else float(parameter.min)


def _static_hps(hyperparameters: dict[str, Any]) -> str:
    import json
    import shlex

    return "--hps " + shlex.quote(json.dumps(hyperparameters, sort_keys=True)) if hyperparameters else "--"


def _hps_template(plan: "Plan", sweep: "Sweep") -> str:
    """``--hps '{...}'`` with each swept value as ``${{search_space.NAME}}`` (what Azure ML fills in per trial),
    so ``context().hp()`` gives the trial's value."""
    import json
    import shlex

    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(plan.spec.hyperparameters.items()) if k not in sweep.parameters]
    for name, parameter in sweep.parameters.items():
        textual = parameter.type == "categorical" and any(isinstance(v, str) for v in parameter.values or [])
        value = f"${{{{search_space.{name}}}}}"
        parts.append(f"{json.dumps(name)}: " + (f'"{value}"' if textual else value))
    text = "--hps " + shlex.quote("{" + ", ".join(parts) + "}")
    return text if plan.spec.hyperparameters else text + " --"


def build_yaml(plan: "Plan", sweep: "Sweep") -> dict[str, Any]:
    import json
    import warnings

    from cloudtrain.providers.azureml_job import restore_input_paths

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = build_sweep_job(plan, sweep)
        document = json.loads(json.dumps(job._to_dict()))
    # the SDK's dict leaves out the job's identity: its name, names and tags (the submission's token)
    identity = {"name": job.name, "display_name": job.display_name, "experiment_name": job.experiment_name, "tags": job.tags}
    document = {**identity, **document}
    # the SDK writes the trial as a whole component; a sweep job's trial takes only these
    document["trial"] = {k: v for k, v in document.get("trial", {}).items() if k in _TRIAL_KEYS and v not in ({}, None)}
    inputs = {k: v for k, v in (document.get("inputs") or {}).items() if k not in sweep.parameters}
    restore_input_paths(inputs, plan)
    document["inputs"] = inputs
    return {"$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
            **{k: v for k, v in document.items() if v not in ({}, None)}}


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
