"""SageMaker hyperparameter tuning in the emulator, run for real: the tuning operations that the
emulator's WSGI layer (:class:`cloudtrain.emulators.sagemaker.SageMakerApi`) hands here instead of
to moto, whose tuning jobs are a placeholder that runs nothing.

- ``CreateHyperParameterTuningJob``: checked as the service checks it
  (:mod:`cloudtrain.emulators.sagemaker_tuning_request`; ValidationException), a name already used
  in the account and region is ``ResourceInUse``; then the job's tuner starts launching trials
  (:mod:`cloudtrain.emulators.sagemaker_tuning_job`, values from
  :mod:`cloudtrain.emulators.sagemaker_tuning_space`).
- ``DescribeHyperParameterTuningJob``: status, ``TrainingJobStatusCounters``,
  ``ObjectiveStatusCounters``, ``BestTrainingJob`` (with ``TunedHyperParameters`` and
  ``FinalHyperParameterTuningJobObjectiveMetric``), times, ``ConsumedResources``; unknown name:
  ``ResourceNotFound``.
- ``ListHyperParameterTuningJobs``: ``NameContains``, ``StatusEquals``, ``CreationTime*`` /
  ``LastModifiedTime*``, ``SortBy`` Name/Status/CreationTime, ``SortOrder``, ``MaxResults``
  (default 10) and ``NextToken``.
- ``ListTrainingJobsForHyperParameterTuningJob``: the trials, ``StatusEquals``, ``SortBy``
  Name (default)/CreationTime/Status/FinalObjectiveMetricValue (which leaves out trials without
  an objective), ``SortOrder``, ``MaxResults`` (default 10), ``NextToken``.
- ``StopHyperParameterTuningJob``: Stopping, the running trials stopped, then Stopped; a job that
  already ended: ValidationException.
- ``DeleteHyperParameterTuningJob``: forgets an ended tuning job (its trials stay).
- ``ListTags`` / ``AddTags`` / ``DeleteTags`` on a tuning job's ARN: its tags (the request's
  ``Tags``, which every trial also gets); on any other ARN moto answers.

Faults apply to these operations by name (``SageMaker.CreateHyperParameterTuningJob``...) as to any
other: :class:`cloudtrain.emulators.common.FaultMiddleware` sits in front of the whole layer. The
trials' own calls carry the emulator's internal header, so faults never hit them.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import uuid
import weakref
from typing import Any, Callable, Iterable

from cloudtrain.emulators.common import INTERNAL_HEADER, drain_request_body
from cloudtrain.emulators.sagemaker_tuning_job import TERMINAL, TuningJob
from cloudtrain.emulators.sagemaker_tuning_request import check

PREFIX = "SageMaker."
OPERATIONS = tuple(PREFIX + name for name in (
    "CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob", "ListHyperParameterTuningJobs",
    "ListTrainingJobsForHyperParameterTuningJob", "StopHyperParameterTuningJob", "DeleteHyperParameterTuningJob",
    "ListTags", "AddTags", "DeleteTags"))  # the tag calls only for tuning job ARNs; moto answers the others
_TAG_OPERATIONS = ("ListTags", "AddTags", "DeleteTags")
_LIST_SORT = {"Name": lambda s: s["HyperParameterTuningJobName"], "Status": lambda s: s["HyperParameterTuningJobStatus"],
              "CreationTime": lambda s: s["CreationTime"]}
_TRIAL_SORT = {"Name": lambda s: s["TrainingJobName"], "Status": lambda s: s["TrainingJobStatus"],
               "CreationTime": lambda s: s["CreationTime"],
               "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]}


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class TuningService:
    """The tuning jobs of one emulator, by (account, region, name), oldest first."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.jobs: dict[tuple[str, str, str], TuningJob] = {}
        self.lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, account: str, region: str) -> Any:
        """A SageMaker client on the emulator for (account, region), exempt from faults."""
        import boto3
        from botocore.config import Config

        with self.lock:
            if (account, region) not in self._clients:
                client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
                    "sagemaker", region_name=region, endpoint_url=self.emulator.endpoint_url,
                    config=Config(retries={"mode": "standard"}))

                def headers(request: Any, **kwargs: Any) -> None:
                    request.headers[INTERNAL_HEADER] = "1"
                    request.headers["X-Moto-Account-Id"] = account

                client.meta.events.register("before-sign", headers)
                self._clients[account, region] = client
            return self._clients[account, region]

    def job(self, account: str, region: str, name: str) -> TuningJob:
        job = self.jobs.get((account, region, name))
        if job is None:
            raise ApiError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")
        return job

    def by_arn(self, arn: str) -> TuningJob | None:
        return next((job for job in list(self.jobs.values()) if job.arn == arn), None)

    def tags(self, account: str, region: str, request: dict[str, Any], operation: str) -> dict[str, Any]:
        job = self.by_arn(request.get("ResourceArn", ""))
        if job is None:
            raise ApiError("ResourceNotFound", f"No tuning job has the ARN {request.get('ResourceArn')}")
        with job.lock:
            tags = {t["Key"]: t["Value"] for t in job.request.get("Tags") or []}
            if operation == "AddTags":
                tags.update({t["Key"]: t.get("Value", "") for t in request.get("Tags") or []})
            elif operation == "DeleteTags":
                tags = {k: v for k, v in tags.items() if k not in set(request.get("TagKeys") or [])}
            job.request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return {"Tags": job.request["Tags"]} if operation != "DeleteTags" else {}

    def jobs_in(self, account: str, region: str) -> list[TuningJob]:
        return [job for (a, r, _), job in list(self.jobs.items()) if (a, r) == (account, region)]

    # -- operations ------------------------------------------------------------------------------

    def create(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            parameters = check(request)
        except ValueError as error:
            raise ApiError("ValidationException", str(error)) from None
        name = request["HyperParameterTuningJobName"]
        arn = f"arn:aws:sagemaker:{region}:{account}:hyper-parameter-tuning-job/{name.lower()}"
        with self.lock:
            if self.by_arn(arn) is not None:  # names differing only in case share an ARN, as in SageMaker
                raise ApiError("ResourceInUse", "Hyperparameter tuning job names must be unique within an AWS account and "
                                                f"region, and a tuning job with this name already exists ({arn})")
            job = TuningJob(request, parameters, arn, account, region, None, self.emulator)
            self.jobs[account, region, name] = job
        job.client = self.client(account, region)
        job.start()
        return {"HyperParameterTuningJobArn": arn}

    def describe(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        return self.job(account, region, request.get("HyperParameterTuningJobName", "")).describe()

    def stop(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(account, region, request.get("HyperParameterTuningJobName", ""))
        if not job.cancel():
            raise ApiError("ValidationException", f"The request was rejected because the tuning job is in status {job.status}.")
        return {}

    def delete(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(account, region, request.get("HyperParameterTuningJobName", ""))
        if job.status not in TERMINAL:
            raise ApiError("ValidationException", f"The tuning job {job.name} is {job.status}; stop it before deleting it.")
        with self.lock:
            self.jobs.pop((account, region, job.name), None)
        return {}

    def list_jobs(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        summaries = [job.summary() for job in self.jobs_in(account, region)]
        text, status = request.get("NameContains"), request.get("StatusEquals")
        summaries = [s for s in summaries if (not text or text in s["HyperParameterTuningJobName"])
                     and (not status or s["HyperParameterTuningJobStatus"] == status)
                     and _within(s["CreationTime"], request, "CreationTime")
                     and _within(s["LastModifiedTime"], request, "LastModifiedTime")]
        return _page(summaries, request, _LIST_SORT, "Name", "HyperParameterTuningJobSummaries")

    def list_trials(self, account: str, region: str, request: dict[str, Any]) -> dict[str, Any]:
        job = self.job(account, region, request.get("HyperParameterTuningJobName", ""))
        with job.lock:
            summaries = [job.trial_summary(trial) for trial in job.trials]
        if request.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == request["StatusEquals"]]
        if request.get("SortBy") == "FinalObjectiveMetricValue":
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        return _page(summaries, request, _TRIAL_SORT, "Name", "TrainingJobSummaries")


def _within(moment: datetime.datetime, request: dict[str, Any], field: str) -> bool:
    after, before = request.get(field + "After"), request.get(field + "Before")
    stamp = _epoch(moment)
    return (after is None or stamp > float(after)) and (before is None or stamp < float(before))


def _page(items: list[dict[str, Any]], request: dict[str, Any], sorts: dict[str, Callable[[dict[str, Any]], Any]],
          default: str, key: str) -> dict[str, Any]:
    sort_by = request.get("SortBy") or default
    if sort_by not in sorts:
        raise ApiError("ValidationException", f"Value '{sort_by}' at 'sortBy' failed to satisfy constraint: Member must "
                                              f"satisfy enum value set: [{', '.join(sorts)}]")
    items = sorted(items, key=sorts[sort_by], reverse=request.get("SortOrder") == "Descending")
    size = int(request.get("MaxResults") or 10)
    if not 1 <= size <= 100:
        raise ApiError("ValidationException", f"Value '{size}' at 'maxResults' failed to satisfy constraint: Member must "
                                              "have value between 1 and 100")
    token = request.get("NextToken")
    try:
        start = int(token) if token else 0
        if not 0 <= start <= len(items):
            raise ValueError
    except ValueError:
        raise ApiError("ValidationException", "Invalid pagination token.") from None
    answer: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        answer["NextToken"] = str(start + size)
    return answer


_services: "weakref.WeakKeyDictionary[Any, TuningService]" = weakref.WeakKeyDictionary()
_services_lock = threading.Lock()


def service_of(emulator: Any) -> TuningService:
    with _services_lock:
        if emulator not in _services:
            _services[emulator] = TuningService(emulator)
        return _services[emulator]


def tuning_jobs(emulator: Any) -> list[TuningJob]:
    """The emulator's tuning jobs (each with ``cancel()`` and ``join()``, as ``Emulator.stop`` wants)."""
    with _services_lock:
        service = _services.get(emulator)
    return list(service.jobs.values()) if service is not None else []


def _epoch(moment: datetime.datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)).timestamp()


def _json(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return _epoch(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _respond(start_response: Callable[..., Any], status: str, body: dict[str, Any], error: str | None = None) -> list[bytes]:
    data = json.dumps(body, default=_json).encode()
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4())),
               ("Content-Length", str(len(data)))]
    start_response(status, headers + ([("x-amzn-ErrorType", error)] if error else []))
    return [data]


def handle(api: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer one tuning operation (``X-Amz-Target`` in :data:`OPERATIONS`) for ``api``'s emulator."""
    operation = environ.get("HTTP_X_AMZ_TARGET", "")[len(PREFIX):]
    service = service_of(api.emulator)
    handlers = {"CreateHyperParameterTuningJob": service.create, "DescribeHyperParameterTuningJob": service.describe,
                "ListHyperParameterTuningJobs": service.list_jobs, "StopHyperParameterTuningJob": service.stop,
                "ListTrainingJobsForHyperParameterTuningJob": service.list_trials,
                "DeleteHyperParameterTuningJob": service.delete}
    body = drain_request_body(environ)
    try:
        request = json.loads(body or b"{}")
        if not isinstance(request, dict):
            raise ValueError
    except ValueError:
        return _respond(start_response, "400 Bad Request", {"__type": "SerializationException", "message": "the body is not a JSON object"},
                        "SerializationException")
    if operation in _TAG_OPERATIONS:
        if service.by_arn(request.get("ResourceArn", "")) is None:  # not a tuning job: moto's
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            return api.moto_app(environ, start_response)
        handlers[operation] = lambda a, r, q: service.tags(a, r, q, operation)
    account, region = api.account_and_region(environ)
    try:
        return _respond(start_response, "200 OK", handlers[operation](account, region, request))
    except ApiError as error:
        return _respond(start_response, "400 Bad Request", {"__type": error.code, "message": error.message}, error.code)
