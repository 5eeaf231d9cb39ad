"""SageMaker hyperparameter tuning jobs: create once, follow, stop (the SageMaker backend's sweeps).

The request is :mod:`cloudtrain.sweeps.sagemaker`'s ``CreateHyperParameterTuningJob``. Its name
holds the submission token, so a create answered "already exists" by a tuning job tagged with this
submission's token is this submission's (a retry never makes a second one); a create left without
a clear answer (a dropped connection or 5xx after botocore's retries) is this submission's if
SageMaker has the job, else the submission stays PENDING as uncertain. Following:

- status: ``DescribeHyperParameterTuningJob`` -> the neutral state, a message with the trial
  counters and the best trial (``BestTrainingJob``: name, objective value, tuned values), and the
  best trial's model once the tuning job ended;
- logs: each trial's CloudWatch stream, in the order the trials were created, each line prefixed
  with ``[trial name]``;
- cancel: ``StopHyperParameterTuningJob`` (SageMaker stops the running trials).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudtrain.errors import ProviderError
from cloudtrain.providers.base import JobRef, JobState, JobStatus, NativeRequest

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.providers.sagemaker import SageMakerProvider

STATES = {"InProgress": JobState.RUNNING, "Completed": JobState.SUCCEEDED, "Failed": JobState.FAILED,
          "Stopping": JobState.CANCELLING, "Stopped": JobState.CANCELLED, "Deleting": JobState.CANCELLING,
          "DeleteFailed": JobState.FAILED}


def submit(provider: "SageMakerProvider", plan: "Plan", request: NativeRequest) -> JobRef:
    from botocore.exceptions import BotoCoreError, ClientError

    payload = request.payload
    name = payload["HyperParameterTuningJobName"]
    provider.stage(plan, request)
    sagemaker = provider.client("sagemaker", plan.region)
    try:
        sagemaker.create_hyper_parameter_tuning_job(**payload)
    except ClientError as error:
        info = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if info.get("Code") in ("ResourceInUse", "ValidationException") and "already exist" in str(info.get("Message", "")).lower():
            _check_ours(provider, sagemaker, name, plan.submission_token)
        elif status >= 500 or info.get("Code") in ("ThrottlingException", "InternalFailure", "ServiceUnavailable"):
            _found_or_uncertain(provider, sagemaker, name, plan.submission_token, error)  # botocore's retries ran out
        else:
            raise provider.translate_error(f"create the tuning job {name}", error) from None
    except BotoCoreError as error:  # a dropped or timed-out connection after botocore's retries: it may exist
        _found_or_uncertain(provider, sagemaker, name, plan.submission_token, error)
    except Exception as error:  # noqa: BLE001
        raise provider.translate_error(f"create the tuning job {name}", error) from None
    return JobRef(job_id=name, cloud="sagemaker", native_id=name, region=plan.region,
                  details={"kind": "sweep", "submission_token": plan.submission_token,
                           "objective": payload["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]})


def _found_or_uncertain(provider: "SageMakerProvider", sagemaker: Any, name: str, token: str, error: Exception) -> None:
    """After a create with no clear answer: this submission's tuning job if SageMaker has it, else
    an uncertain submission (recorded PENDING; ``status`` asks SageMaker whether it exists)."""
    from cloudtrain.errors import SubmissionUncertainError

    try:
        _check_ours(provider, sagemaker, name, token)
        return
    except ProviderError as lookup:
        if "another tuning job" in lookup.message:
            raise
    raise SubmissionUncertainError(
        f"no clear answer from sagemaker to the create request of the tuning job {name} ({type(error).__name__}); "
        "it may have been accepted",
        f"`cloudtrain status {name}` asks SageMaker whether it exists; if it does not, run `cloudtrain sweep SPEC --cloud sagemaker` again")


def _check_ours(provider: "SageMakerProvider", sagemaker: Any, name: str, token: str) -> None:
    job = provider.call(f"describe the tuning job {name}", sagemaker.describe_hyper_parameter_tuning_job,
                        HyperParameterTuningJobName=name)
    tags = provider.call(f"read the tags of {name}", sagemaker.list_tags, ResourceArn=job["HyperParameterTuningJobArn"])
    found = {t["Key"]: t["Value"] for t in tags.get("Tags", [])}.get("cloudtrain:submission")
    if found != token:
        raise ProviderError(f"another tuning job named {name} already exists (submission {found})",
                            "submit again: a new submission gets a new name")


def status(provider: "SageMakerProvider", ref: JobRef) -> JobStatus:
    sagemaker = provider.client("sagemaker", ref.region)
    job = provider.call(f"describe the tuning job {ref.native_id}", sagemaker.describe_hyper_parameter_tuning_job,
                        HyperParameterTuningJobName=ref.native_id)
    native = job["HyperParameterTuningJobStatus"]
    state = STATES.get(native, JobState.RUNNING)
    counters = job.get("TrainingJobStatusCounters") or {}
    parts = [f"trials: {counters.get('Completed', 0)} completed, {counters.get('InProgress', 0)} running, "
             f"{counters.get('Stopped', 0)} stopped, "
             f"{counters.get('RetryableError', 0) + counters.get('NonRetryableError', 0)} failed"]
    best = job.get("BestTrainingJob")
    model = None
    if best:
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        tuned = ", ".join(f"{k}={v}" for k, v in sorted((best.get("TunedHyperParameters") or {}).items()))
        parts.insert(0, f"best {best['TrainingJobName']}: {objective.get('MetricName', ref.details.get('objective'))} = "
                        f"{objective.get('Value')} ({tuned})")
        if state.is_terminal:
            trial = provider.call(f"describe the trial {best['TrainingJobName']}", sagemaker.describe_training_job,
                                  TrainingJobName=best["TrainingJobName"])
            model = (trial.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if job.get("FailureReason"):
        parts.insert(0, job["FailureReason"])
    return JobStatus(state=state, native_state=native, message="; ".join(parts), started_at=job.get("CreationTime"),
                     ended_at=job.get("HyperParameterTuningEndTime"), model_uri=model)


def trials(provider: "SageMakerProvider", ref: JobRef) -> list[str]:
    """The tuning job's training jobs, oldest first."""
    sagemaker = provider.client("sagemaker", ref.region)
    pages = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=ref.native_id, SortBy="CreationTime", SortOrder="Ascending")
    return provider.call(f"list the trials of {ref.native_id}",
                         lambda: [j["TrainingJobName"] for page in pages for j in page["TrainingJobSummaries"]])


def read_logs(provider: "SageMakerProvider", ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
    """Every trial's new lines, prefixed with the trial's name; ``cursor``: trial -> its cursor."""
    cursors: dict[str, Any] = dict(cursor or {})
    lines: list[str] = []
    for trial in trials(provider, ref):
        trial_ref = JobRef(job_id=trial, cloud="sagemaker", native_id=trial, region=ref.region)
        new, cursors[trial] = provider.read_trial_logs(trial_ref, cursors.get(trial), final)
        lines += [f"[{trial}] {line}" for line in new]
    return lines, cursors


def cancel(provider: "SageMakerProvider", ref: JobRef) -> None:
    sagemaker = provider.client("sagemaker", ref.region)
    provider.call(f"stop the tuning job {ref.native_id}", sagemaker.stop_hyper_parameter_tuning_job,
                  HyperParameterTuningJobName=ref.native_id)
