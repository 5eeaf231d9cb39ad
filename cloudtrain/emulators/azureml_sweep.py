"""The Azure ML emulator's sweep jobs (``jobType: Sweep``), run for real: every trial is a child
command job that runs like any other (:mod:`~cloudtrain.emulators.azureml_execution`).

A created sweep job (``NotStarted``) goes ``Running`` and launches trials, at most
``limits.maxConcurrentTrials`` at a time and ``limits.maxTotalTrials`` in all (for grid sampling, at
most the grid's size). Trial N (from 0) is the child run ``<sweep>_N``: the ``trial`` command with
each ``${{search_space.<name>}}`` replaced by the value sampled for it, and ``AZUREML_SWEEP_<name>``
set to it, the sweep's inputs, outputs, compute, resources and queue settings, and
``limits.trialTimeout`` as its timeout. Its run's tag ``hyperparameters`` holds its values (JSON).
Sampling (``samplingAlgorithm``): ``Random`` draws each parameter from its distribution
(``uniform``, ``loguniform`` (natural-log bounds), ``quniform``/``qloguniform`` (rounded to ``q``),
``normal``, ``lognormal``, ``qnormal``, ``qlognormal``, ``randint`` and ``choice``); ``Grid`` takes
every combination of ``choice`` values in turn (any other distribution is refused, as Azure ML
does); ``Bayesian`` is **not emulated as Bayesian optimisation: it samples randomly**, like
``Random``.

Metrics: a trial, as every command job, gets ``MLFLOW_TRACKING_URI`` (the emulator's MLflow
tracking server, :mod:`~cloudtrain.emulators.azureml_mlflow`) and ``MLFLOW_RUN_ID`` (its run), as on
Azure ML, so ``mlflow.log_metric`` (or ``mlflow.autolog()``) records on its run. A trial's value is
its best value of the primary metric (``objective.primaryMetric``, by ``objective.goal``); a trial
that did not complete, or logged no finite value of it, is never the best. As trials complete, the sweep's properties
``best_child_run_id``, ``score`` and ``best_metric_status`` name the best one, as Azure ML's
sweep (HyperDrive) run does. The sweep ends ``Completed`` once its trials ended and one of them
gave a value, else ``Failed`` (with the reason); a cancel cancels the running trials, launches no
more and ends it ``Canceled``.

Early termination (``earlyTermination``) is applied to the running trials as their metric comes
in, on each poll: each report of the primary metric is an interval; a trial is evaluated at its
latest interval ``k`` at or after ``delayEvaluation`` and on the ``evaluationInterval``, against the
trials (running or ended) that reported ``k`` values, once there are two. ``Bandit``: cancelled when
its best value up to ``k`` is outside ``slackFactor`` (best / (1 + factor) when maximizing,
best x (1 + factor) when minimizing) or ``slackAmount`` of the best trial's; ``MedianStopping``:
when its best value up to ``k`` is worse than the median of the trials' running averages over
intervals 1..k; ``TruncationSelection``: when its value at ``k`` is among the worst
``truncationPercentage`` percent at ``k``. A cancelled trial ends ``Canceled``; a trial that ends
before the policy sees its values is not stopped (as a fast trial on Azure ML). The sweep's own
``limits.timeout`` cancels it once it has run that long: its running trials are canceled, no more
are launched, and it ends ``Canceled`` with an error saying so.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.emulators.azureml_answers import now_iso
from cloudtrain.emulators.common import iso_seconds
from cloudtrain.emulators.early_stopping import median_verdict

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

TERMINAL = ("Completed", "Failed", "Canceled")
SAMPLERS = ("random", "grid", "bayesian")
DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "quniform": 3, "qloguniform": 3, "normal": 2, "lognormal": 2,
                 "qnormal": 3, "qlognormal": 3, "randint": 1, "choice": 1}
_SEARCH_SPACE = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def check_sweep(props: dict[str, Any]) -> str | None:
    """What Azure ML refuses in a sweep job's properties (a 400 UserError message), or None."""
    trial = props.get("trial") or {}
    for key in ("command", "environmentId"):
        if not trial.get(key):
            return f"properties.trial.{key} is required"
    objective = props.get("objective") or {}
    if not objective.get("primaryMetric") or str(objective.get("goal", "")).lower() not in ("minimize", "maximize"):
        return "properties.objective needs a primaryMetric and a goal (Minimize or Maximize)"
    algorithm = str((props.get("samplingAlgorithm") or {}).get("samplingAlgorithmType", "")).lower()
    if algorithm not in SAMPLERS:
        return f"properties.samplingAlgorithm.samplingAlgorithmType must be Random, Grid or Bayesian, not {algorithm!r}"
    space = props.get("searchSpace") or {}
    if not space:
        return "properties.searchSpace is required"
    for name, spec in space.items():
        if not (isinstance(spec, list) and len(spec) == 2 and spec[0] in DISTRIBUTIONS and isinstance(spec[1], list)
                and len(spec[1]) == DISTRIBUTIONS[spec[0]]):
            return f"properties.searchSpace.{name}: {spec!r} is not a distribution Azure ML knows"
        if algorithm == "grid" and spec[0] != "choice":
            return f"properties.searchSpace.{name}: grid sampling takes choice parameters only, not {spec[0]}"
        if spec[0] == "choice" and not spec[1][0]:
            return f"properties.searchSpace.{name}: a choice needs values"
    used = set(_SEARCH_SPACE.findall(trial["command"]))
    if used - set(space):
        return f"properties.trial.command uses ${{{{search_space.{sorted(used - set(space))[0]}}}}}, which searchSpace does not declare"
    limits = props.get("limits") or {}
    try:
        total, parallel = int(limits.get("maxTotalTrials") or 0), int(limits.get("maxConcurrentTrials") or 1)
    except (TypeError, ValueError):
        total, parallel = 0, 0
    if total < 1 or parallel < 1:
        return "properties.limits.maxTotalTrials and maxConcurrentTrials must be at least 1"
    return None


def sample(spec: list[Any], rng: random.Random) -> Any:
    """One value of an Azure ML (hyperopt-style) distribution ``[name, [arguments]]``."""
    kind, args = spec[0], spec[1]
    if kind == "choice":
        return rng.choice(list(args[0]))
    if kind == "randint":
        return rng.randrange(int(args[0]))
    if kind in ("uniform", "quniform"):
        value = rng.uniform(float(args[0]), float(args[1]))
    elif kind in ("loguniform", "qloguniform"):
        value = math.exp(rng.uniform(float(args[0]), float(args[1])))
    elif kind in ("normal", "qnormal"):
        value = rng.gauss(float(args[0]), float(args[1]))
    else:  # lognormal, qlognormal
        value = math.exp(rng.gauss(float(args[0]), float(args[1])))
    if kind.startswith("q"):
        q = args[2]
        value = round(value / q) * q
        return int(value) if isinstance(q, int) and float(value).is_integer() else value
    return value


def proposals(props: dict[str, Any], rng: random.Random) -> Any:
    """The values of each trial in turn: every grid combination, or random draws (Random and Bayesian)."""
    space = props["searchSpace"]
    if str(props["samplingAlgorithm"]["samplingAlgorithmType"]).lower() == "grid":
        names = list(space)
        for combination in itertools.product(*(list(space[name][1][0]) for name in names)):
            yield dict(zip(names, combination))
        return
    while True:
        yield {name: sample(spec, rng) for name, spec in space.items()}


def text_of(value: Any) -> str:
    return json.dumps(value) if isinstance(value, float) else str(value)


def trial_properties(props: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The child command job of a trial with ``values`` (its command and ``AZUREML_SWEEP_*`` filled in)."""
    trial = props["trial"]
    command = _SEARCH_SPACE.sub(lambda match: text_of(values[match.group(1)]), trial["command"])
    variables = {**(trial.get("environmentVariables") or {}), **{f"AZUREML_SWEEP_{k}": text_of(v) for k, v in values.items()}}
    child: dict[str, Any] = {"jobType": "Command", "command": command, "environmentId": trial["environmentId"],
                             "environmentVariables": variables, "experimentName": props.get("experimentName"),
                             "inputs": props.get("inputs") or {}, "outputs": json.loads(json.dumps(props.get("outputs") or {})),
                             "tags": {"hyperparameters": json.dumps(values, sort_keys=True)}}
    for key in ("codeId", "distribution", "resources"):
        if trial.get(key) or props.get(key):
            child[key] = trial.get(key) or props.get(key)
    for key in ("computeId", "queueSettings", "identity"):
        if props.get(key):
            child[key] = props[key]
    timeout = (props.get("limits") or {}).get("trialTimeout")
    if timeout:
        child["limits"] = {"jobLimitsType": "Command", "timeout": timeout}
    return {k: v for k, v in child.items() if v is not None}


def stop_reason(policy: dict[str, Any] | None, goal: str, series: dict[str, list[float]], trial: str) -> str | None:
    """Why the early termination ``policy`` ends ``trial`` now, or None; ``series``: every trial's
    values of the primary metric, in logging order (see the module docstring)."""
    kind = str((policy or {}).get("policyType") or "").lower()
    if kind not in ("bandit", "medianstopping", "truncationselection"):
        return None
    delay, interval = int(policy.get("delayEvaluation") or 0), max(1, int(policy.get("evaluationInterval") or 0))
    reports = len(series.get(trial) or [])
    k = reports - (reports - delay) % interval
    if reports < max(delay, 1) or k < max(delay, 1):
        return None
    reached = [name for name, values in series.items() if len(values) >= k]
    if len(reached) < 2:
        return None
    maximize = goal == "maximize"
    better = max if maximize else min
    mine = better(series[trial][:k])
    if kind == "bandit":
        best = better(better(series[name][:k]) for name in reached)
        factor, amount = float(policy.get("slackFactor") or 0), float(policy.get("slackAmount") or 0)
        if factor:
            limit = best / (1 + factor) if maximize else best * (1 + factor)
        else:
            limit = best - amount if maximize else best + amount
        outside = mine < limit if maximize else mine > limit
        return f"bandit policy at interval {k}: {mine:g} is outside the slack of the best trial's {best:g}" if outside else None
    if kind == "medianstopping":
        verdict = median_verdict(series[trial][:k], [series[name] for name in reached], maximize, use_best=True)
        return f"median stopping policy at interval {k}: {verdict}" if verdict else None
    count = int(len(reached) * float(policy.get("truncationPercentage") or 0) / 100)
    worst = sorted(reached, key=lambda name: series[name][k - 1], reverse=not maximize)[:count]
    return f"truncation selection policy at interval {k}: among the worst {count} of {len(reached)}" if trial in worst else None


def trial_value(metrics: list[dict[str, Any]], goal: str) -> float | None:
    """A trial's best finite value of the primary metric, or None."""
    finite = [item["value"] for item in metrics if math.isfinite(item["value"])]
    if not finite:
        return None
    return max(finite) if goal == "maximize" else min(finite)


class SweepRun(threading.Thread):
    """One sweep job (``job``) run in a thread. ``create_child(parent, name, properties)`` records
    and starts a child command job; ``cancel_child(name)`` cancels one."""

    def __init__(self, service: "AzureMLService", job: str, create_child: Callable[[str, str, dict[str, Any]], None],
                 cancel_child: Callable[[str], None], poll_seconds: float = 0.1) -> None:
        super().__init__(name=f"azureml-sweep-{job}", daemon=True)
        self.service, self.job = service, job
        self.create_child, self.cancel_child = create_child, cancel_child
        self.poll_seconds = poll_seconds
        self.props: dict[str, Any] = service.jobs[job]["properties"]
        self.cancel_requested = False
        self.active: list[str] = []
        self.values: dict[str, float] = {}  # completed trial -> its value
        self.stopped: dict[str, str] = {}  # trial ended by the early termination policy -> why
        self._wake = threading.Event()

    def cancel(self) -> bool:
        with self.service.lock:
            if self.service.runs[self.job]["status"] in TERMINAL:
                return False
            first, self.cancel_requested = not self.cancel_requested, True
            if first:
                self.service.set_run(self.job, status="CancelRequested")
            active = list(self.active)
        for child in active:
            self.cancel_child(child)
        self._wake.set()
        return True

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # an emulator bug: end the sweep and say so
            traceback.print_exc()  # the emulator's own output (`emulator start` shows it)
            for child in list(self.active):
                self.cancel_child(child)
            self.service.set_run(self.job, status="Failed", endTimeUtc=now_iso(),
                                 error={"code": "SystemError", "message": f"emulator error: {type(error).__name__}: {error}"})

    def _run(self) -> None:
        props, service = self.props, self.service
        limits = props.get("limits") or {}
        total, parallel = int(limits["maxTotalTrials"]), int(limits.get("maxConcurrentTrials") or 1)
        goal = str(props["objective"]["goal"]).lower()
        metric = props["objective"]["primaryMetric"]
        source = proposals(props, random.Random())
        launched = completed = 0
        timeout, started, timed_out = iso_seconds(limits.get("timeout")), time.monotonic(), False
        with service.lock:
            if not self.cancel_requested:
                service.set_run(self.job, status="Running", startTimeUtc=now_iso())
        while True:
            if timeout and not self.cancel_requested and time.monotonic() - started >= timeout:
                timed_out = self.cancel()
            with service.lock:
                while not self.cancel_requested and launched < total and len(self.active) < parallel:
                    values = next(source, None)
                    if values is None:  # the grid is exhausted
                        total = launched
                        break
                    child = f"{self.job}_{launched}"
                    launched += 1
                    self.create_child(self.job, child, trial_properties(props, values))
                    self.active.append(child)
                if not self.active:
                    break
                ended = [child for child in self.active if service.runs[child]["status"] in TERMINAL]
                series = {child: [m["value"] for m in (service.runs[child].get("metrics") or {}).get(metric) or []]
                          for child, run in service.runs.items() if run.get("parent") == self.job}
                stopping = {child: reason for child in self.active if child not in ended and child not in self.stopped
                            and (reason := stop_reason(props.get("earlyTermination"), goal, series, child))}
                self.stopped.update(stopping)
                for child in ended:
                    self.active.remove(child)
                    if service.runs[child]["status"] == "Completed":
                        completed += 1
                        value = trial_value((service.runs[child].get("metrics") or {}).get(metric) or [], goal)
                        if value is not None:
                            self.values[child] = value
                            self._record_best(goal)
            for child in stopping:  # outside the lock: a cancel waits for the trial's own lock
                self.cancel_child(child)
            if not ended:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
        with service.lock:
            if timed_out:
                service.set_run(self.job, status="Canceled", endTimeUtc=now_iso(), error={
                    "code": "UserError", "message": f"the sweep job reached its limits.timeout ({timeout:g} s) and was canceled"})
            elif self.cancel_requested:
                service.set_run(self.job, status="Canceled", endTimeUtc=now_iso())
            elif self.values:
                service.set_run(self.job, status="Completed", endTimeUtc=now_iso())
            else:
                reason = (f"no trial logged the primary metric {metric}" if completed
                          else f"all {launched} trials failed or were canceled")
                service.set_run(self.job, status="Failed", endTimeUtc=now_iso(), error={"code": "UserError", "message": reason})

    def _record_best(self, goal: str) -> None:
        pick = max if goal == "maximize" else min
        best = pick(self.values, key=self.values.__getitem__)
        self.props.setdefault("properties", {}).update(
            best_child_run_id=best, score=text_of(float(self.values[best])), best_metric_status="Succeeded")
