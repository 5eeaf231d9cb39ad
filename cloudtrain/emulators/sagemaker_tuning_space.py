"""The search space of an emulated SageMaker tuning job: its ``ParameterRanges`` checked as the
service checks them, and the samplers that choose each trial's values.

- ``Random``: each value drawn independently within its range, honouring ``ScalingType``:
  ``Linear`` uniform, ``Logarithmic`` uniform in log space (bounds > 0), ``ReverseLogarithmic``
  (continuous only, 0 <= min < max < 1) uniform in log space of ``1 - value``, so values crowd
  towards 1. ``Auto`` is searched on a linear scale (SageMaker chooses the scale itself; the
  emulator does not guess). A combination already tried is drawn again (up to 100 times), and the
  job ends early when every combination of an all-categorical space has been tried.
- ``Grid``: categorical ranges only (as SageMaker): every combination, in order, once.
- ``Bayesian``: Optuna's TPE sampler (``optuna.samplers.TPESampler``) fed each finished trial's
  objective; not SageMaker's Gaussian-process model, but a Bayesian search that learns from the
  trials that ran.
- ``Hyperband``: drawn as ``Random``; the emulator does not stop trials early (each runs to its end).

``RandomSeed`` seeds every sampler. Values reach trials as SageMaker hands them: strings, integers
as ``"7"``, continuous values as Python's shortest ``repr`` of the float.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
_KINDS = {"IntegerParameterRanges": "integer", "ContinuousParameterRanges": "continuous",
          "CategoricalParameterRanges": "categorical"}


class InvalidRanges(ValueError):
    """What SageMaker answers with a ValidationException."""


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # integer | continuous | categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"
    values: tuple[str, ...] = ()

    def draw(self, rng: random.Random) -> str:
        if self.kind == "categorical":
            return rng.choice(self.values)
        integer = self.kind == "integer"
        if self.scaling == "Logarithmic":  # integers: each of low..high takes its share of log space
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1 if integer else self.high)))
            return self.text(math.floor(value) if integer else value)
        if integer:
            return str(rng.randint(int(self.low), int(self.high)))
        elif self.scaling == "ReverseLogarithmic":
            value = 1.0 - math.exp(rng.uniform(math.log(1.0 - self.high), math.log(1.0 - self.low)))
        else:
            value = rng.uniform(self.low, self.high)
        return self.text(value)

    def text(self, value: float) -> str:
        value = min(max(value, self.low), self.high)
        return str(int(round(value))) if self.kind == "integer" else repr(float(value))


def _number(text: Any, integer: bool, where: str) -> float:
    try:
        return float(int(str(text))) if integer else float(str(text))
    except ValueError:
        raise InvalidRanges(f"{where} '{text}' is not {'an integer' if integer else 'a number'}.") from None


def parse_ranges(ranges: dict[str, Any], static: dict[str, str]) -> list[Parameter]:
    """The parameters of ``ParameterRanges`` (InvalidRanges for what SageMaker refuses)."""
    parameters: list[Parameter] = []
    for key, kind in _KINDS.items():
        for item in ranges.get(key) or []:
            name = item.get("Name", "")
            if kind == "categorical":
                values = tuple(str(v) for v in item.get("Values") or [])
                if not values or len(set(values)) != len(values):
                    raise InvalidRanges(f"The categorical hyperparameter '{name}' needs distinct values.")
                parameters.append(Parameter(name, kind, values=values))
                continue
            integer, scaling = kind == "integer", item.get("ScalingType") or "Auto"
            low = _number(item.get("MinValue"), integer, f"MinValue of '{name}'")
            high = _number(item.get("MaxValue"), integer, f"MaxValue of '{name}'")
            if scaling not in SCALING_TYPES:
                raise InvalidRanges(f"ScalingType '{scaling}' of '{name}' is not one of {', '.join(SCALING_TYPES)}.")
            if low > high:
                raise InvalidRanges(f"MinValue of '{name}' ({item.get('MinValue')}) is greater than its MaxValue ({item.get('MaxValue')}).")
            if scaling == "Logarithmic" and low <= 0:
                raise InvalidRanges(f"The hyperparameter '{name}' uses Logarithmic scaling, which needs MinValue greater than 0.")
            if scaling == "ReverseLogarithmic" and (integer or not (0 <= low < high < 1)):
                raise InvalidRanges(f"The hyperparameter '{name}' uses ReverseLogarithmic scaling, which needs a continuous "
                                    "range with 0 <= MinValue < MaxValue < 1.")
            parameters.append(Parameter(name, kind, low, high, "Linear" if scaling == "Auto" else scaling))
    names = [p.name for p in parameters]
    for name in names:
        if names.count(name) > 1:
            raise InvalidRanges(f"The hyperparameter '{name}' is given more than one range.")
        if name in static:
            raise InvalidRanges(f"The hyperparameter '{name}' is both tunable and static; remove it from StaticHyperParameters.")
    if not parameters:
        raise InvalidRanges("ParameterRanges must give at least one hyperparameter to tune.")
    if len(parameters) > 30:
        raise InvalidRanges("A tuning job searches at most 30 hyperparameters.")
    return parameters


class Sampler:
    """Chooses the next trial's values (``propose``; None: nothing left to try) and learns from
    each finished trial (``tell``: the objective, or None when it gave none)."""

    def __init__(self, parameters: list[Parameter], seed: int | None, maximize: bool) -> None:
        self.parameters, self.maximize = parameters, maximize
        self.rng = random.Random(seed)
        self.tried: set[tuple[str, ...]] = set()

    def _key(self, values: dict[str, str]) -> tuple[str, ...]:
        return tuple(values[p.name] for p in self.parameters)

    def propose(self) -> tuple[Any, dict[str, str]] | None:
        for _ in range(100):
            values = {p.name: p.draw(self.rng) for p in self.parameters}
            if self._key(values) not in self.tried:
                self.tried.add(self._key(values))
                return None, values
        return None

    def tell(self, ticket: Any, objective: float | None) -> None:
        pass


class GridSampler(Sampler):
    def __init__(self, parameters: list[Parameter], seed: int | None, maximize: bool) -> None:
        super().__init__(parameters, seed, maximize)
        self._grid = itertools.product(*[p.values for p in parameters])

    def propose(self) -> tuple[Any, dict[str, str]] | None:
        combination = next(self._grid, None)
        return None if combination is None else (None, dict(zip([p.name for p in self.parameters], combination)))


def grid_size(parameters: list[Parameter]) -> int:
    return math.prod(len(p.values) for p in parameters)


class BayesianSampler(Sampler):
    """Optuna's TPE through its ask/tell interface (a ticket is an Optuna trial)."""

    def __init__(self, parameters: list[Parameter], seed: int | None, maximize: bool) -> None:
        super().__init__(parameters, seed, maximize)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                         sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
        self.distributions: dict[str, Any] = {}
        for p in parameters:
            if p.kind == "categorical":
                self.distributions[p.name] = optuna.distributions.CategoricalDistribution(p.values)
            elif p.scaling == "ReverseLogarithmic":  # searched as log(1 - value)
                self.distributions[p.name] = optuna.distributions.FloatDistribution(1.0 - p.high, 1.0 - p.low, log=True)
            elif p.kind == "integer":
                self.distributions[p.name] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.scaling == "Logarithmic")
            else:
                self.distributions[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.scaling == "Logarithmic")

    def propose(self) -> tuple[Any, dict[str, str]] | None:
        trial = self.study.ask(self.distributions)
        values = {}
        for p in self.parameters:
            raw = trial.params[p.name]
            values[p.name] = raw if p.kind == "categorical" else p.text(1.0 - raw if p.scaling == "ReverseLogarithmic" else raw)
        return trial, values

    def tell(self, ticket: Any, objective: float | None) -> None:
        if objective is None or not math.isfinite(objective):
            self.study.tell(ticket, state=self._optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(ticket, objective)


def sampler_for(strategy: str, parameters: list[Parameter], seed: int | None, maximize: bool) -> Sampler:
    kind = {"Grid": GridSampler, "Bayesian": BayesianSampler}.get(strategy, Sampler)
    return kind(parameters, seed, maximize)
