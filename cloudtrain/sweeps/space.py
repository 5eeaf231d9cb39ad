"""The search space: sweep parameters as Optuna distributions, and the spec of one trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.spec import JobSpec, Sweep, SweepParameter
    from cloudtrain.specfile import LoadedSpec


def require_sweep(spec: "JobSpec") -> "Sweep":
    if spec.sweep is None:
        raise SpecError(f"{spec.name}: the spec has no sweep: section",
                        "add sweep: {objective: {metric: val_loss, goal: minimize}, parameters: {lr: {type: float, min: 1e-4, max: 1e-1, scale: log}}}")
    return spec.sweep


def check_reported_objective(spec: "JobSpec", sweep: "Sweep", service: str, reads: str) -> None:
    """Refuse an objective that only a regex finds in the output, for a tuning service that reads
    the objective the script reports (``reads``) instead of its logs."""
    from cloudtrain.errors import UnsupportedFeatureError

    metric = next((m for m in spec.metrics if m.name == sweep.objective.metric and m.regex), None)
    if metric is not None:
        raise UnsupportedFeatureError(
            f"sweep.objective.metric: {service} reads a sweep's objective {reads}, not from the job's output, so the "
            f"metric {metric.name!r} that the regex {metric.regex!r} finds there never reaches it",
            "log it with context().log_metric in the script (it reports there on every cloud), "
            "or sweep it on SageMaker or locally, which read such a metric from the output")


#: the entry shim's variables (cloudtrain.runtime.entry) that name the program it runs
_SHIM_VARIABLES = ("CLOUDTRAIN_ENTRYPOINT", "CLOUDTRAIN_MODULE", "CLOUDTRAIN_COMMAND")


def with_objective(environment: dict[str, str], sweep: "Sweep") -> dict[str, str]:
    """A trial's variables, with ``CLOUDTRAIN_OBJECTIVE`` naming the objective where the entry shim
    runs the program: it relays the objective a script reports through MLflow or cloudml-hypertune
    to where the cloud's tuning service reads it (:mod:`cloudtrain.runtime.relay`)."""
    if not any(name in environment for name in _SHIM_VARIABLES):
        return environment  # a prebuilt container's own entrypoint: the script reports as the service reads
    return {**environment, "CLOUDTRAIN_OBJECTIVE": sweep.objective.metric}


def distribution(parameter: "SweepParameter") -> Any:
    """The Optuna distribution of one sweep parameter."""
    import optuna

    if parameter.type == "categorical":
        return optuna.distributions.CategoricalDistribution(list(parameter.values or []))
    low, high, log = parameter.min, parameter.max, parameter.scale == "log"
    assert low is not None and high is not None
    if parameter.type == "int":
        return optuna.distributions.IntDistribution(int(low), int(high), log=log)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log)


def distributions(sweep: "Sweep") -> dict[str, Any]:
    return {name: distribution(parameter) for name, parameter in sweep.parameters.items()}


def grid(sweep: "Sweep") -> dict[str, list[Any]]:
    """Every value of each parameter for a grid search: categorical values and every int in range
    (the spec refuses a grid over a float parameter: :class:`cloudtrain.spec.Sweep`)."""
    out: dict[str, list[Any]] = {}
    for name, parameter in sweep.parameters.items():
        if parameter.type == "categorical":
            out[name] = list(parameter.values or [])
        else:
            out[name] = list(range(int(parameter.min or 0), int(parameter.max or 0) + 1))
    return out


def grid_size(sweep: "Sweep") -> int:
    return math.prod(len(values) for values in grid(sweep).values())


def trial_spec(spec: "JobSpec", params: dict[str, Any], number: int | None = None) -> "JobSpec":
    """The sweep's spec with the trial's values merged into hyperparameters and ``sweep`` removed;
    with ``number``, the job is named ``<sweep>-trial-<number>`` (as the clouds name their trials),
    the sweep's name shortened to keep the name within 40 characters."""
    data = spec.model_dump(mode="python", exclude={"sweep"})
    data["hyperparameters"] = {**spec.hyperparameters, **params}
    if number is not None:
        suffix = f"-trial-{number}"
        data["name"] = spec.name[:40 - len(suffix)].rstrip("-") + suffix
    return type(spec).model_validate(data)


def trial_loaded(loaded: "LoadedSpec", params: dict[str, Any], number: int | None = None) -> "LoadedSpec":
    from dataclasses import replace

    return replace(loaded, spec=trial_spec(loaded.spec, params, number))


def without_sweep(loaded: "LoadedSpec") -> "LoadedSpec":
    """The spec one trial runs with, before any trial values (the cloud tuning services' template).
    A swept parameter the spec has no hyperparameter for gets one (its lower bound, or its first
    value), so that the trial's job knows the name and takes the tuning service's value for it."""
    spec = loaded.spec
    sweep = spec.sweep
    defaults: dict[str, Any] = {}
    for name, parameter in (sweep.parameters.items() if sweep is not None else ()):
        if name not in spec.hyperparameters:
            defaults[name] = (parameter.values or [None])[0] if parameter.type == "categorical" else parameter.min
    return trial_loaded(loaded, defaults)
