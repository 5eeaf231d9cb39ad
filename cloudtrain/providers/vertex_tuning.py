"""Vertex AI hyperparameter tuning jobs: create once, follow, cancel (the Vertex backend's sweeps).

The request is :mod:`cloudtrain.sweeps.vertex`'s ``HyperparameterTuningJob``, whose display name is
the sweep's name in the job store. Vertex assigns its id, so, as for a custom job, the job carries
the label ``cloudtrain-submission=<token>`` and every create attempt is preceded by a look for a
tuning job of the location with that label: a create whose answer was lost, retried, never makes
a second one. Following:

- status: ``GetHyperparameterTuningJob`` -> the neutral state; a message with the trial counts and
  the best trial (by the study's goal, among the trials with a final measurement of its metric:
  an INFEASIBLE trial is never the best), with its parameters and value; once the job ended, the
  model at the best trial's ``AIP_MODEL_DIR`` (its CustomJob's base output directory + ``model/``);
- logs: each trial's CustomJob lines from Cloud Logging (``Trial.custom_job``), in trial order,
  prefixed with ``[trial N]``, through the provider's Cloud Logging reader;
- cancel: ``CancelHyperparameterTuningJob`` (Vertex cancels the running trials).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.errors import CloudtrainError, ProviderError, SubmissionUncertainError
from cloudtrain.providers.base import CreateOutcome, JobRef, JobState, JobStatus, NativeRequest

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.providers.vertex import VertexProvider

RUNNING_TRIALS = ("REQUESTED", "ACTIVE", "STOPPING")


def submit(provider: "VertexProvider", plan: "Plan", request: NativeRequest) -> JobRef:
    from google.cloud import aiplatform_v1

    from cloudtrain.providers.vertex_job import SUBMISSION_LABEL

    payload = request.payload
    provider.stage(plan, request)
    client, parent = provider._parent(plan)
    token = payload["labels"][SUBMISSION_LABEL]
    job = aiplatform_v1.HyperparameterTuningJob.from_json(request.to_text())
    what = f"create the tuning job {payload['displayName']}"
    delay, name = provider.retry_seconds, None
    for attempt in range(1, provider.create_attempts + 1):
        name = _find(provider, client, parent, token)
        if name is not None:
            break
        try:
            name = client.create_hyperparameter_tuning_job(parent=parent, hyperparameter_tuning_job=job, retry=None).name
            break
        except CloudtrainError:
            raise
        except Exception as error:  # noqa: BLE001 - sorted and translated below
            if provider.classify_create_error(error) is CreateOutcome.FATAL:
                raise provider.translate_error(what, error) from None
            if attempt == provider.create_attempts:
                name = _find(provider, client, parent, token)
                if name is not None:
                    break
                raise SubmissionUncertainError(
                    f"no clear answer from Vertex AI to the create request of the tuning job {payload['displayName']} "
                    f"({type(error).__name__}); it may have been accepted",
                    f"look for a tuning job labelled {SUBMISSION_LABEL}={token} in {parent}; if there is none, "
                    "run `cloudtrain sweep SPEC --cloud vertex` again") from None
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    assert name is not None
    study = payload["studySpec"]["metrics"][0]
    return JobRef(job_id=plan.job_name, cloud="vertex", native_id=name, region=plan.settings.get("location") or plan.region,
                  details={"kind": "sweep", "submission_token": plan.submission_token, "project": plan.settings["project"],
                           "objective": study["metricId"], "goal": study["goal"], "replicas": plan.nodes})


def _find(provider: "VertexProvider", client: Any, parent: str, token: str) -> str | None:
    """The tuning job of ``parent`` labelled with this submission's token, or None."""
    from cloudtrain.providers.vertex_job import SUBMISSION_LABEL

    pages = provider.call("look for a tuning job created by this submission", client.list_hyperparameter_tuning_jobs,
                          request={"parent": parent, "filter": f'labels.{SUBMISSION_LABEL}="{token}"'},
                          retry=provider._retry(reads=True))
    for job in provider.call("list tuning jobs", lambda: list(pages)):
        if job.labels.get(SUBMISSION_LABEL) == token:
            return job.name
    return None


def describe(provider: "VertexProvider", ref: JobRef) -> Any:
    if not ref.native_id:  # a create Vertex never answered: its id is Vertex's, unknown here
        raise ProviderError(f"Vertex AI never confirmed the tuning job of {ref.job_id}",
                            f"look for a tuning job labelled cloudtrain-submission={ref.details.get('submission_token')}; "
                            "if there is none, run `cloudtrain sweep SPEC --cloud vertex` again")
    client = provider.client(ref.region)
    return provider.call(f"get the tuning job {ref.native_id}", client.get_hyperparameter_tuning_job,
                         name=ref.native_id, retry=provider._retry(reads=True))


def best_trial(job: Any) -> tuple[Any, float] | None:
    """(the best trial by the study's goal, its value) among those measured on the study's metric."""
    metric = job.study_spec.metrics[0]
    measured = []
    for trial in job.trials:
        if trial.state.name != "SUCCEEDED":
            continue
        values = [m.value for m in trial.final_measurement.metrics if m.metric_id == metric.metric_id]
        if values:
            measured.append((trial, values[0]))
    if not measured:
        return None
    pick = max if metric.goal.name == "MAXIMIZE" else min
    return pick(measured, key=lambda pair: pair[1])


def _time(job: Any, field: str) -> datetime | None:
    value = getattr(job, field, None)
    return value if isinstance(value, datetime) and value.timestamp() > 0 else None


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def status(provider: "VertexProvider", ref: JobRef, neutral_state: Callable[[str], JobState]) -> JobStatus:
    """``neutral_state``: the Vertex provider's ``JobState`` table, which tuning jobs share with custom jobs."""
    job = describe(provider, ref)
    native = job.state.name
    state = neutral_state(native)
    states = [trial.state.name for trial in job.trials]
    parts = [f"trials: {states.count('SUCCEEDED')} succeeded, {sum(s in RUNNING_TRIALS for s in states)} running, "
             f"{states.count('INFEASIBLE')} infeasible (of {job.max_trial_count})"]
    model = None
    best = best_trial(job)
    if best is not None:
        trial, value = best
        tuned = ", ".join(f"{p.parameter_id}={_value(p.value)}" for p in trial.parameters)
        parts.insert(0, f"best trial {trial.id}: {job.study_spec.metrics[0].metric_id} = {value} ({tuned})")
        if state.is_terminal and trial.custom_job:
            trial_ref = JobRef(job_id=trial.custom_job, cloud="vertex", native_id=trial.custom_job, region=ref.region)
            output = provider.describe(trial_ref).job_spec.base_output_directory.output_uri_prefix
            model = output.rstrip("/") + "/model/" if output else None
    if job.error.message and state in (JobState.FAILED, JobState.CANCELLED):
        parts.insert(0, job.error.message)
    return JobStatus(state=state, native_state=native, message="; ".join(parts), started_at=_time(job, "start_time"),
                     ended_at=_time(job, "end_time"), model_uri=model)


def read_logs(provider: "VertexProvider", ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
    """Every trial's new lines, prefixed with ``[trial N]``; ``cursor``: trial id -> its reader's cursor."""
    cursors: dict[str, Any] = dict(cursor or {})
    project = ref.details.get("project") or ref.native_id.split("/")[1]
    replicas = int(ref.details.get("replicas") or 1)
    lines: list[str] = []
    for trial in describe(provider, ref).trials:
        if not trial.custom_job:
            continue
        new, cursors[trial.id] = provider.call(f"read the log entries of trial {trial.id}", provider.log_reader(project).read,
                                               trial.custom_job, cursors.get(trial.id), prefix_tasks=replicas > 1)
        lines += [f"[trial {trial.id}] {line}" for line in new]
    return lines, cursors


def cancel(provider: "VertexProvider", ref: JobRef) -> None:
    from google.api_core import exceptions

    client = provider.client(ref.region)
    try:
        client.cancel_hyperparameter_tuning_job(name=ref.native_id, retry=provider._retry(reads=True))
    except (exceptions.FailedPrecondition, exceptions.BadRequest):
        if not provider.status(ref).state.is_terminal:
            raise ProviderError(f"Vertex AI cannot cancel {ref.native_id} now", "retry in a moment") from None
    except Exception as error:  # noqa: BLE001
        raise provider.translate_error(f"cancel the tuning job {ref.native_id}", error) from None
