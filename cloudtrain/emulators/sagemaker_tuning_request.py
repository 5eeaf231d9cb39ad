"""What the emulated SageMaker checks in a ``CreateHyperParameterTuningJob`` request, and the
``CreateTrainingJob`` request it sends for each trial.

Checked as the service does, server side (a client may skip botocore's own validation): botocore's
``ParamValidator`` against the service model (required members, types, unknown keys, minimums),
then what it leaves out (enums, name patterns, maximums), then the service's own rules: one
``TrainingJobDefinition`` (the emulator does not run ``TrainingJobDefinitions``), an objective
whose metric is one of the definition's ``MetricDefinitions``, ``MaxNumberOfTrainingJobs`` (left
out only with Grid, where the grid decides) at least ``MaxParallelTrainingJobs``, valid ranges
(:func:`cloudtrain.emulators.sagemaker_tuning_space.parse_ranges`), Grid with categorical ranges
only, Hyperband and Grid without ``TrainingJobEarlyStoppingType: Auto``, ``HyperbandStrategyConfig``
only with Hyperband and MinResource <= MaxResource; and the trial request that
the definition gives must pass the emulator's CreateTrainingJob checks.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from cloudtrain.emulators.sagemaker_tuning_space import InvalidRanges, Parameter, parse_ranges

OPERATION = "CreateHyperParameterTuningJob"


@functools.lru_cache(maxsize=None)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def _strict(shape: Any, value: Any, path: str) -> list[str]:
    """Enums, patterns, lengths and maximums: what botocore's ParamValidator does not check."""
    problems: list[str] = []
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value:
                name = key[0].lower() + key[1:]  # the service names members as camelCase paths
                problems += _strict(member, value[key], f"{path}.{name}" if path else name)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}")
        for index, item in enumerate(value):
            problems += _strict(shape.member, item, f"{path}.{index + 1}")
    elif shape.type_name == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}")
    elif shape.type_name == "string" and isinstance(value, str):
        if getattr(shape, "enum", None) and value not in shape.enum:
            problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: "
                            f"[{', '.join(shape.enum)}]")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}")
        pattern = meta.get("pattern")
        if pattern and not _fullmatch(pattern, value):
            problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression "
                            f"pattern: {pattern}")
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and "max" in meta and value > meta["max"]:
        problems.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}")
    return problems


def _fullmatch(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value, re.DOTALL) is not None
    except re.error:  # a Java-only construct: the service's check is not ours to guess
        return True


def shape_problems(request: dict[str, Any]) -> list[str]:
    from botocore.validate import ParamValidator

    shape = _model().operation_model(OPERATION).input_shape
    report = ParamValidator().validate(request, shape)
    problems = [line.strip() for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    return problems + _strict(shape, request, "")


def _metric_names(definition: dict[str, Any]) -> list[str]:
    return [m.get("Name") for m in (definition.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []]


def check(request: dict[str, Any]) -> list[Parameter]:
    """The request's tunable parameters; ValueError (its message: the ValidationException's) when
    the service would refuse it."""
    problems = shape_problems(request)
    if problems:
        raise ValueError(f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: " + "; ".join(problems))
    config, definition = request["HyperParameterTuningJobConfig"], request.get("TrainingJobDefinition")
    if request.get("TrainingJobDefinitions"):
        raise ValueError("The emulator runs tuning jobs with one TrainingJobDefinition; TrainingJobDefinitions is not emulated.")
    if not definition:
        raise ValueError("TrainingJobDefinition is required.")
    objective, strategy = config.get("HyperParameterTuningJobObjective"), config["Strategy"]
    if not objective:
        raise ValueError("HyperParameterTuningJobObjective is required.")
    if objective["MetricName"] not in _metric_names(definition):
        raise ValueError(f"The objective metric '{objective['MetricName']}' is not one of the MetricDefinitions of the "
                         f"training job definition ({', '.join(map(str, _metric_names(definition))) or 'none given'}).")
    limits = config["ResourceLimits"]
    maximum, parallel = limits.get("MaxNumberOfTrainingJobs"), limits["MaxParallelTrainingJobs"]
    if maximum is None and strategy != "Grid":
        raise ValueError(f"ResourceLimits.MaxNumberOfTrainingJobs is required with the {strategy} strategy.")
    if maximum is not None and parallel > maximum:
        raise ValueError(f"MaxParallelTrainingJobs ({parallel}) cannot be greater than MaxNumberOfTrainingJobs ({maximum}).")
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    if strategy in ("Hyperband", "Grid") and early != "Off":
        raise ValueError(f"TrainingJobEarlyStoppingType must be Off with the {strategy} strategy.")
    hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    if hyperband and strategy != "Hyperband":
        raise ValueError(f"StrategyConfig.HyperbandStrategyConfig is for the Hyperband strategy, not {strategy}.")
    if hyperband.get("MinResource", 1) > hyperband.get("MaxResource", hyperband.get("MinResource", 1)):
        raise ValueError("HyperbandStrategyConfig.MinResource cannot be greater than MaxResource.")
    try:
        parameters = parse_ranges(config.get("ParameterRanges") or {}, definition.get("StaticHyperParameters") or {})
    except InvalidRanges as error:
        raise ValueError(str(error)) from None
    if strategy == "Grid" and any(p.kind != "categorical" for p in parameters):
        raise ValueError("The Grid strategy searches categorical parameters only; "
                         f"'{next(p.name for p in parameters if p.kind != 'categorical')}' is not categorical.")
    from cloudtrain.emulators.sagemaker_validation import validate_create

    sample = trial_request(definition, request["HyperParameterTuningJobName"] + "-001-00000000",
                           {p.name: "0" for p in parameters}, [])
    problem = validate_create(sample)
    if problem:
        raise ValueError(f"TrainingJobDefinition: {problem}")
    return parameters


def trial_request(definition: dict[str, Any], name: str, tuned: dict[str, str], tags: list[dict[str, str]]) -> dict[str, Any]:
    """The CreateTrainingJob request of one trial: the definition's training job members,
    StaticHyperParameters with the tuned values (strings), the tuning job's tags."""
    members = _model().operation_model("CreateTrainingJob").input_shape.members
    request = {key: value for key, value in definition.items() if key in members and key != "HyperParameters"}
    algorithm = dict(definition.get("AlgorithmSpecification") or {})
    request.update(TrainingJobName=name, AlgorithmSpecification=algorithm,
                   HyperParameters={**(definition.get("StaticHyperParameters") or {}), **tuned})
    if tags:
        request["Tags"] = list(tags)
    return request
