"""A sweep as a SageMaker ``CreateHyperParameterTuningJob`` request (pure: no network).

The training job definition is the ``CreateTrainingJob`` request the SageMaker provider builds
for one trial (:func:`cloudtrain.providers.sagemaker_request.build_request`), mapped into
``TrainingJobDefinition``: the swept hyperparameters leave ``StaticHyperParameters`` (SageMaker
refuses a name in both) and the objective is a ``MetricDefinitions`` entry matching the runtime's
metric line (:func:`cloudtrain.runtime.context.metric_regex`).

Strategies: ``tpe`` -> Bayesian, ``random`` -> Random, ``grid`` -> Grid (SageMaker's grid takes
categorical parameters only; ``MaxNumberOfTrainingJobs`` is then left out, the grid decides),
``early_stopping: hyperband`` -> the Hyperband strategy (it stops trials itself, so
``TrainingJobEarlyStoppingType`` is Off), ``median`` -> ``TrainingJobEarlyStoppingType: Auto``
(SageMaker's median stopping rule). Log scales: ``ScalingType: Logarithmic`` with the real bounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudtrain.errors import UnsupportedFeatureError
from cloudtrain.runtime.context import metric_regex

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.spec import Sweep

OPERATION = "CreateHyperParameterTuningJob"
STRATEGY = {"tpe": "Bayesian", "random": "Random", "grid": "Grid"}
#: CreateTrainingJob keys that become the same-named keys of the TrainingJobDefinition
_SAME_KEYS = ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition",
              "EnableManagedSpotTraining", "Environment", "CheckpointConfig", "VpcConfig")


def tuning_job_name(plan: "Plan") -> str:
    """At most 32 characters (SageMaker's limit for tuning jobs): name, time, token."""
    return f"{plan.spec.name[:17].rstrip('-')}-{plan.created_at:%m%d%H%M}-{plan.submission_token[:4]}"


def _number(value: float, integer: bool) -> str:
    return str(int(value)) if integer else repr(float(value))


def check(sweep: "Sweep") -> None:
    """What SageMaker's tuning service cannot do, refused naming the spec field."""
    if sweep.algorithm == "grid":
        for name, parameter in sweep.parameters.items():
            if parameter.type != "categorical":
                raise UnsupportedFeatureError(
                    f"sweep.parameters.{name}: SageMaker's Grid strategy takes categorical parameters only ({parameter.type} given)",
                    "make it categorical (values: [...]), or use algorithm: tpe or random")
        if sweep.early_stopping != "none":
            raise UnsupportedFeatureError("sweep.early_stopping: SageMaker's Grid strategy has no early stopping",
                                          "use early_stopping: none with algorithm: grid")
        from cloudtrain.sweeps.space import grid_size

        combinations = grid_size(sweep)
        if sweep.max_trials < combinations:  # the service takes no MaxNumberOfTrainingJobs with Grid: it runs them all
            raise UnsupportedFeatureError(
                f"sweep.max_trials: SageMaker's Grid strategy runs every combination ({combinations}) and cannot stop "
                f"at max_trials {sweep.max_trials}", f"set max_trials: {combinations}, or use algorithm: random")
    if sweep.early_stopping == "hyperband" and sweep.algorithm != "tpe":
        raise UnsupportedFeatureError(f"sweep.early_stopping: hyperband is SageMaker's Hyperband strategy, which replaces "
                                      f"algorithm: {sweep.algorithm}", "use algorithm: tpe with early_stopping: hyperband")
    if len(sweep.parameters) > 30:
        raise UnsupportedFeatureError("sweep.parameters: SageMaker tunes at most 30 parameters", "vary fewer parameters")


def parameter_ranges(sweep: "Sweep") -> dict[str, list[dict[str, Any]]]:
    ranges: dict[str, list[dict[str, Any]]] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                                               "CategoricalParameterRanges": []}
    for name, parameter in sweep.parameters.items():
        if parameter.type == "categorical":
            values = [v if isinstance(v, str) else ("true" if v is True else "false" if v is False else str(v))
                      for v in parameter.values or []]
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": values})
            continue
        integer = parameter.type == "int"
        key = "IntegerParameterRanges" if integer else "ContinuousParameterRanges"
        ranges[key].append({"Name": name, "MinValue": _number(parameter.min or 0, integer),
                            "MaxValue": _number(parameter.max or 0, integer),
                            "ScalingType": "Logarithmic" if parameter.scale == "log" else "Linear"})
    return {key: value for key, value in ranges.items() if value}


def training_job_definition(plan: "Plan", sweep: "Sweep") -> dict[str, Any]:
    """The provider's CreateTrainingJob request for one trial, as a TrainingJobDefinition."""
    from cloudtrain.providers.sagemaker_request import build_request

    request = build_request(plan)
    algorithm = dict(request["AlgorithmSpecification"])
    metrics = [m for m in algorithm.get("MetricDefinitions", []) if m["Name"] != sweep.objective.metric]
    objective = next((m for m in plan.spec.metrics if m.name == sweep.objective.metric), None)
    regex = objective.regex if objective is not None and objective.regex else metric_regex(sweep.objective.metric)
    algorithm["MetricDefinitions"] = [{"Name": sweep.objective.metric, "Regex": regex}, *metrics]
    definition: dict[str, Any] = {
        "StaticHyperParameters": {k: v for k, v in request["HyperParameters"].items() if k not in sweep.parameters},
        "AlgorithmSpecification": algorithm,
    }
    definition.update({key: request[key] for key in _SAME_KEYS if key in request})
    if "Environment" in definition:
        from cloudtrain.sweeps.space import with_objective

        definition["Environment"] = with_objective(definition["Environment"], sweep)
    return definition


def build_tuning_request(plan: "Plan", sweep: "Sweep") -> dict[str, Any]:
    """The keyword arguments of boto3's ``create_hyper_parameter_tuning_job``."""
    check(sweep)
    hyperband = sweep.early_stopping == "hyperband"
    config: dict[str, Any] = {
        "Strategy": "Hyperband" if hyperband else STRATEGY[sweep.algorithm],
        "HyperParameterTuningJobObjective": {"Type": "Maximize" if sweep.objective.goal == "maximize" else "Minimize",
                                             "MetricName": sweep.objective.metric},
        "ResourceLimits": {"MaxParallelTrainingJobs": sweep.max_parallel},
        "ParameterRanges": parameter_ranges(sweep),
        "TrainingJobEarlyStoppingType": "Auto" if sweep.early_stopping == "median" else "Off",
    }
    if sweep.algorithm != "grid":
        config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = sweep.max_trials
    if hyperband:
        epochs = sweep.parameters.get("epochs")
        maximum = int(epochs.max) if epochs is not None and epochs.max else int(plan.spec.hyperparameters.get("epochs", 0) or 0)
        if maximum < 2:
            raise UnsupportedFeatureError("sweep.early_stopping: SageMaker's Hyperband needs the largest number of epochs "
                                          "(an epochs hyperparameter or an epochs sweep parameter)",
                                          "add hyperparameters: {epochs: N}, or use early_stopping: median")
        config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": maximum}}
    definition = training_job_definition(plan, sweep)
    tags = [{"Key": k, "Value": v} for k, v in plan.spec.tags.items()]
    tags += [{"Key": "cloudtrain:job", "Value": plan.spec.name}, {"Key": "cloudtrain:submission", "Value": plan.submission_token}]
    return {"HyperParameterTuningJobName": tuning_job_name(plan), "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition, "Tags": tags}


def validate_tuning_request(request: dict[str, Any]) -> None:
    """botocore's checks (required, types, unknown keys, minimums) and what it skips (enums,
    patterns, maximums), against the CreateHyperParameterTuningJob service model."""
    from cloudtrain.providers.sagemaker_request import validate

    validate(request, OPERATION)
