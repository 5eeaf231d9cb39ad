"""Azure ML sweep jobs: create once, follow, cancel (the Azure ML backend's sweeps).

The request is :mod:`cloudtrain.sweeps.azureml`'s sweep job YAML. Its name is the plan's job name
and its tags hold the submission token, so it is created as a command job is
(:meth:`AzureMLProvider.create`, through :meth:`Provider.create_once`): the code bundle is staged
and the SDK's ``SweepJob`` (loaded with ``load_job``, the trial's ``code`` at the staged copy)
goes to ``MLClient.jobs.create_or_update``; a job of that name tagged with this submission is this
submission's, so a retry never makes a second sweep; a create with no answer after every attempt
leaves the sweep PENDING as uncertain (``status`` asks Azure ML whether it exists). Following:

- status: the sweep job's status (the command jobs' table); a message with its trials' counts (the
  sweep's child runs, ``jobs.list(parent_job_name=...)``) and the best trial, which Azure ML names in
  the sweep's properties (``best_child_run_id``, ``score``) with the values of its run's tag
  ``hyperparameters``; once the sweep ended, the model at the best trial's ``model`` output;
- logs: each trial's ``user_logs/std_log*.txt`` (as a command job's), in creation order, each line
  prefixed with ``[trial name]``;
- cancel: ``MLClient.jobs.begin_cancel`` of the sweep (Azure ML cancels its running trials).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.providers.base import JobRef, JobState, JobStatus, NativeRequest

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.providers.azureml import AzureMLProvider

#: a trial's run status -> the counter it adds to
_COUNTERS = {"Completed": "completed", "Failed": "failed", "Canceled": "cancelled"}


def submit(provider: "AzureMLProvider", plan: "Plan", request: NativeRequest) -> JobRef:
    """Create the sweep job once; a create left without an answer is recorded PENDING (uncertain),
    with the way to find out (a sweep is not resumed: it is submitted again if it does not exist)."""
    from cloudtrain.errors import SubmissionUncertainError

    try:
        ref = provider.submit(plan, request)
    except SubmissionUncertainError as error:
        raise SubmissionUncertainError(error.message.replace(f"of {plan.job_name}", f"of the sweep job {plan.job_name}"),
                                       f"`cloudtrain status {plan.job_name}` asks Azure ML whether the sweep job exists; if it does "
                                       "not, run `cloudtrain sweep SPEC --cloud azureml` again") from None
    objective = request.payload["objective"]
    return JobRef(job_id=ref.job_id, cloud=ref.cloud, native_id=ref.native_id, region=ref.region,
                  details={**ref.details, "kind": "sweep", "objective": objective["primary_metric"], "goal": objective["goal"]})


def trials(provider: "AzureMLProvider", ref: JobRef) -> list[Any]:
    """The sweep's child runs (its trials), as run history lists them."""
    ml = provider._ml(ref)
    return provider.call(f"list the trials of {ref.native_id}", lambda: list(ml.jobs.list(parent_job_name=ref.native_id)))


def _values(trial: Any) -> str:
    try:
        values = json.loads((trial.tags or {}).get("hyperparameters") or "{}")
    except ValueError:
        return ""
    return ", ".join(f"{name}={value}" for name, value in sorted(values.items())) if isinstance(values, dict) else ""


def status(provider: "AzureMLProvider", ref: JobRef, neutral_state: Callable[[str], JobState],
           output_uri: Callable[[str, str], str], when: Callable[[Any], datetime | None]) -> JobStatus:
    """``neutral_state``, ``output_uri`` and ``when``: the provider's status table, default output
    location and run-history time reader, which sweeps share with command jobs."""
    ml = provider._ml(ref)
    job = provider.call(f"get the sweep job {ref.native_id}", ml.jobs.get, ref.native_id)
    native = str(getattr(job.status, "value", job.status) or "NotStarted")
    state = neutral_state(native)
    children = trials(provider, ref)
    counts = {"completed": 0, "running": 0, "failed": 0, "cancelled": 0}
    for trial in children:
        counts[_COUNTERS.get(str(getattr(trial.status, "value", trial.status)), "running")] += 1
    limits = getattr(job, "limits", None)
    total = getattr(limits, "max_total_trials", None)
    parts = ["trials: " + ", ".join(f"{n} {what}" for what, n in counts.items()) + (f" (of {total})" if total else "")]
    model = None
    properties = job.properties or {}
    best = properties.get("best_child_run_id")
    if best:
        trial = next((t for t in children if t.name == best), None)
        values = _values(trial) if trial is not None else ""
        metric = ref.details.get("objective") or getattr(getattr(job, "objective", None), "primary_metric", "objective")
        parts.insert(0, f"best {best}: {metric} = {properties.get('score')}" + (f" ({values})" if values else ""))
        if state.is_terminal:
            model = output_uri(best, "model")
    message = "; ".join(parts)
    if state.is_terminal:
        details = provider.run_details(ref)
        error = getattr(getattr(details, "error", None), "error", None)
        if getattr(error, "message", None):
            message = f"{error.message}; {message}"
        return JobStatus(state=state, native_state=native, message=message, started_at=when(details.start_time_utc),
                         ended_at=when(details.end_time_utc), model_uri=model)
    return JobStatus(state=state, native_state=native, message=message)


def read_logs(provider: "AzureMLProvider", ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
    """Every trial's new lines, prefixed with ``[trial name]``; ``cursor``: trial -> its cursor."""
    cursors: dict[str, Any] = dict(cursor or {})
    lines: list[str] = []
    for trial in trials(provider, ref):
        trial_ref = JobRef(job_id=trial.name, cloud="azureml", native_id=trial.name, region=ref.region,
                           details={k: v for k, v in ref.details.items() if k != "kind"})
        trial_final = final or str(getattr(trial.status, "value", trial.status)) in _COUNTERS
        new, cursors[trial.name] = provider.read_logs(trial_ref, cursors.get(trial.name), trial_final)
        lines += [f"[{trial.name}] {line}" for line in new]
    return lines, cursors
