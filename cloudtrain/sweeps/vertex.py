"""A sweep as a Vertex AI ``HyperparameterTuningJob`` (REST JSON; pure: no network).

``trialJobSpec`` is the CustomJob ``jobSpec`` the Vertex provider builds for one trial
(:func:`cloudtrain.providers.vertex_job.build_request`). Algorithms: ``tpe`` -> the default
(``ALGORITHM_UNSPECIFIED``, Vertex's Bayesian optimisation), ``random`` -> ``RANDOM_SEARCH``,
``grid`` -> ``GRID_SEARCH`` (no float parameters: Vertex's grid needs discrete ones);
``early_stopping: median`` -> ``medianAutomatedStoppingSpec``; ``hyperband`` is refused (Vertex has
no Hyperband). Log scales: ``scaleType: UNIT_LOG_SCALE`` with the real bounds. Numeric categorical
values are ``discreteValueSpec``, others ``categoricalValueSpec``.

Vertex reads a trial's objective from what the ``cloudml-hypertune`` package writes: JSON lines
in ``/tmp/hypertune/output.metrics`` (``CLOUD_ML_HP_METRIC_FILE``), one object per report with the
metric's tag, value (as a string), ``global_step``, ``timestamp`` and ``trial``; the file is
rewritten with the last 100 reports each time. The runtime's ``context().log_metric`` writes it in
a trial (:func:`cloudtrain.runtime.context.hypertune_line`); the trial's values arrive as
``--name=value`` arguments after the container's command, which the rendered ``bash -c`` command
passes on to the entry shim (:func:`forward_trial_arguments`), which reads them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import SpecError, UnsupportedFeatureError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.spec import Sweep

ALGORITHM = {"tpe": "ALGORITHM_UNSPECIFIED", "random": "RANDOM_SEARCH", "grid": "GRID_SEARCH"}


def check(sweep: "Sweep") -> None:
    if sweep.early_stopping == "hyperband":
        raise UnsupportedFeatureError("sweep.early_stopping: Vertex AI has no Hyperband early stopping",
                                      "use early_stopping: median (Vertex's median automated stopping) or none")
    if sweep.algorithm == "grid":
        for name, parameter in sweep.parameters.items():
            if parameter.type == "float":
                raise UnsupportedFeatureError(f"sweep.parameters.{name}: Vertex AI's grid search takes no float parameter",
                                              "make it categorical (values: [...]) or use algorithm: tpe or random")


def parameter_specs(sweep: "Sweep") -> list[dict[str, Any]]:
    specs = []
    for name, parameter in sweep.parameters.items():
        item: dict[str, Any] = {"parameterId": name}
        if parameter.type == "categorical":
            values = parameter.values or []
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                item["discreteValueSpec"] = {"values": sorted(float(v) for v in values)}
            else:
                item["categoricalValueSpec"] = {"values": [v if isinstance(v, str) else json.dumps(v) for v in values]}
        else:
            if parameter.type == "int":
                item["integerValueSpec"] = {"minValue": str(int(parameter.min or 0)), "maxValue": str(int(parameter.max or 0))}
            else:
                item["doubleValueSpec"] = {"minValue": float(parameter.min or 0), "maxValue": float(parameter.max or 0)}
            item["scaleType"] = "UNIT_LOG_SCALE" if parameter.scale == "log" else "UNIT_LINEAR_SCALE"
        specs.append(item)
    return specs


def build_tuning_request(plan: "Plan", sweep: "Sweep") -> dict[str, Any]:
    from cloudtrain.providers.vertex_job import build_request
    from cloudtrain.sweeps.space import check_reported_objective, with_objective

    check(sweep)
    check_reported_objective(plan.spec, sweep, "Vertex AI", "as the job reports it (cloudml-hypertune)")
    custom = build_request(plan)
    study: dict[str, Any] = {
        "metrics": [{"metricId": sweep.objective.metric, "goal": sweep.objective.goal.upper()}],
        "parameters": parameter_specs(sweep),
        "algorithm": ALGORITHM[sweep.algorithm],
    }
    if sweep.early_stopping == "median":
        study["medianAutomatedStoppingSpec"] = {"useElapsedDuration": False}
    forward_trial_arguments(custom["jobSpec"])
    for pool in custom["jobSpec"]["workerPoolSpecs"]:
        container = pool.get("containerSpec") or {}
        if "env" in container:
            env = with_objective({item["name"]: item["value"] for item in container["env"]}, sweep)
            container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    return {"displayName": plan.job_name, "studySpec": study, "maxTrialCount": sweep.max_trials,
            "parallelTrialCount": sweep.max_parallel, "trialJobSpec": custom["jobSpec"], "labels": custom["labels"]}


def forward_trial_arguments(job_spec: dict[str, Any]) -> None:
    """Vertex appends a trial's ``--name=value`` to each pool's container args, after its command; the
    entry shim reads them from its own arguments. A ``bash -c SCRIPT`` command would hand them to bash
    as ``$0``, ``$1``...: the script passes ``"$@"`` on, with ``bash`` as its ``$0``."""
    for pool in job_spec["workerPoolSpecs"]:
        container = pool.get("containerSpec") or {}
        command = container.get("command") or []
        if len(command) == 3 and command[:2] == ["bash", "-c"] and command[2].endswith("cloudtrain/runtime/entry.py"):
            container["command"] = ["bash", "-c", command[2] + ' "$@"', "bash"]


def validate_tuning_request(request: dict[str, Any]) -> Any:
    """Parse as the SDK's ``HyperparameterTuningJob.from_json`` does, against its descriptors (unknown
    fields, types, enum names refused; :mod:`cloudtrain.providers.vertex_proto`); the protobuf message."""
    from cloudtrain.providers.vertex_proto import parse

    job = parse("HyperparameterTuningJob", request)
    problems = []
    if not job.display_name:
        problems.append("displayName is required")
    if not job.study_spec.metrics or not job.study_spec.parameters:
        problems.append("studySpec needs metrics and parameters")
    if job.max_trial_count < 1 or job.parallel_trial_count < 1:
        problems.append("maxTrialCount and parallelTrialCount are at least 1")
    if not job.trial_job_spec.worker_pool_specs:
        problems.append("trialJobSpec.workerPoolSpecs needs at least one pool")
    if problems:
        raise SpecError("the Vertex AI HyperparameterTuningJob is not valid:\n  " + "\n  ".join(problems),
                        "fix the spec fields behind the request fields named above")
    return job
