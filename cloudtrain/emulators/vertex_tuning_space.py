"""A Vertex AI ``StudySpec``'s parameters as an Optuna search space, and the trials' values as Vertex
hands them to a trial.

Algorithms: ``RANDOM_SEARCH`` -> Optuna's random sampler, ``GRID_SEARCH`` -> each in turn of
every combination of the integer, discrete and categorical values (Vertex's grid takes no double
parameter: refused), ``ALGORITHM_UNSPECIFIED`` (Vertex's Bayesian optimisation) -> Optuna's TPE.
Scales: ``UNIT_LOG_SCALE`` samples the logarithm uniformly (bounds above 0), ``UNIT_LINEAR_SCALE``
and unspecified the value itself; ``UNIT_REVERSE_LOG_SCALE`` is not emulated (refused).
A trial's values reach its replicas as ``--<parameterId>=<value>`` after each pool's args, as on
Vertex; :func:`argument_value` writes a whole-number double without its ``.0`` (``--batch_size=64``),
so ``argparse``'s ``type=int`` takes a discrete value.
"""

from __future__ import annotations

import itertools
from typing import Any

from cloudtrain.emulators.vertex_validation import ApiError


def check_study(study: Any) -> None:
    """What Vertex refuses in a ``StudySpec`` beyond the proto parser (INVALID_ARGUMENT)."""
    if len(study.metrics) != 1 or not study.metrics[0].metric_id:
        raise ApiError(400, "study_spec.metrics must hold exactly one metric with a metric_id.")
    if study.metrics[0].goal.name not in ("MAXIMIZE", "MINIMIZE"):
        raise ApiError(400, "study_spec.metrics[0].goal must be MAXIMIZE or MINIMIZE.")
    if not study.parameters:
        raise ApiError(400, "study_spec.parameters is required.")
    seen = set()
    for index, spec in enumerate(study.parameters):
        where = f"study_spec.parameters[{index}]"
        if not spec.parameter_id or spec.parameter_id in seen:
            raise ApiError(400, f"{where}.parameter_id is required and unique.")
        seen.add(spec.parameter_id)
        kind = kind_of(spec)
        if kind is None:
            raise ApiError(400, f"{where} ({spec.parameter_id}) needs a value spec.")
        if spec.scale_type.name == "UNIT_REVERSE_LOG_SCALE":
            raise ApiError(400, f"{where}: UNIT_REVERSE_LOG_SCALE is not emulated.")
        if kind in ("double", "integer"):
            low, high = bounds(spec)
            if low > high:
                raise ApiError(400, f"{where} ({spec.parameter_id}): min_value must not exceed max_value.")
            if spec.scale_type.name == "UNIT_LOG_SCALE" and low <= 0:
                raise ApiError(400, f"{where} ({spec.parameter_id}): a log scale needs min_value above 0.")
        elif not values_of(spec):
            raise ApiError(400, f"{where} ({spec.parameter_id}): values are required.")
        if spec.conditional_parameter_specs:
            raise ApiError(400, f"{where}: conditional_parameter_specs are not emulated.")
        if study.algorithm.name == "GRID_SEARCH" and kind == "double":
            raise ApiError(400, f"{where} ({spec.parameter_id}): GRID_SEARCH does not take a double_value_spec; "
                                "use integer, discrete or categorical values.")


def kind_of(spec: Any) -> str | None:
    for kind in ("double", "integer", "discrete", "categorical"):
        if f"{kind}_value_spec" in spec:
            return kind
    return None


def bounds(spec: Any) -> tuple[float, float]:
    value = spec.double_value_spec if kind_of(spec) == "double" else spec.integer_value_spec
    if kind_of(spec) == "integer":
        return int(value.min_value), int(value.max_value)
    return float(value.min_value), float(value.max_value)


def values_of(spec: Any) -> list[Any]:
    kind = kind_of(spec)
    if kind == "discrete":
        return [float(v) for v in spec.discrete_value_spec.values]
    if kind == "categorical":
        return [str(v) for v in spec.categorical_value_spec.values]
    if kind == "integer":
        low, high = bounds(spec)
        return list(range(int(low), int(high) + 1))
    raise ValueError(kind)


def distributions(study: Any) -> dict[str, Any]:
    """parameter id -> its Optuna distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for spec in study.parameters:
        kind, log = kind_of(spec), spec.scale_type.name == "UNIT_LOG_SCALE"
        if kind == "double":
            out[spec.parameter_id] = FloatDistribution(*bounds(spec), log=log)
        elif kind == "integer":
            low, high = bounds(spec)
            out[spec.parameter_id] = IntDistribution(int(low), int(high), log=log)
        else:
            out[spec.parameter_id] = CategoricalDistribution(values_of(spec))
    return out


def grid_size(study: Any) -> int:
    size = 1
    for spec in study.parameters:
        size *= len(values_of(spec))
    return size


def new_study(study: Any, seed: int | None = None) -> Any:
    """An Optuna study that samples ``study`` (an ``aiplatform_v1.StudySpec``) as its algorithm says."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    algorithm = study.algorithm.name
    sampler = optuna.samplers.TPESampler(seed=seed) if algorithm == "ALGORITHM_UNSPECIFIED" else optuna.samplers.RandomSampler(seed=seed)
    direction = "maximize" if study.metrics[0].goal.name == "MAXIMIZE" else "minimize"
    created = optuna.create_study(direction=direction, sampler=sampler)
    if algorithm == "GRID_SEARCH":  # every combination in turn (Optuna's GridSampler cannot be told from outside a run)
        names = [spec.parameter_id for spec in study.parameters]
        for combination in itertools.product(*(values_of(spec) for spec in study.parameters)):
            created.enqueue_trial(dict(zip(names, combination)))
    return created


def argument_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def trial_parameters(values: dict[str, Any]) -> list[dict[str, Any]]:
    """``Trial.parameters`` (numbers as numbers, categories as strings)."""
    return [{"parameter_id": name, "value": value if isinstance(value, str) else float(value)} for name, value in values.items()]
