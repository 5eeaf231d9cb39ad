"""The JobService's ``HyperparameterTuningJob`` operations (:mod:`~cloudtrain.emulators.vertex_tuning`)
over REST (:data:`TUNING_ROUTES`, :class:`TuningRoutes`, mixed into ``vertex.JobService``) and gRPC
(:func:`grpc_methods`, added to ``google.cloud.aiplatform.v1.JobService``): Create, Get, List (the
filters of ListCustomJobs), Cancel and Delete, with fault operation names
``JobService.<Method>``. Requests are parsed with the SDK's own proto-plus types (unknown fields refused)."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from cloudtrain.emulators.vertex_validation import ApiError

EMPTY = "type.googleapis.com/google.protobuf.Empty"  # a finished delete operation's response
_PARENT = r"projects/[^/]+/locations/[^/]+"
TUNING_ROUTES = [
    ("POST", re.compile(rf"^/v1/({_PARENT})/hyperparameterTuningJobs$"), "CreateHyperparameterTuningJob"),
    ("GET", re.compile(rf"^/v1/({_PARENT})/hyperparameterTuningJobs$"), "ListHyperparameterTuningJobs"),
    ("GET", re.compile(rf"^/v1/({_PARENT}/hyperparameterTuningJobs/[^/:]+)$"), "GetHyperparameterTuningJob"),
    ("DELETE", re.compile(rf"^/v1/({_PARENT}/hyperparameterTuningJobs/[^/:]+)$"), "DeleteHyperparameterTuningJob"),
    ("POST", re.compile(rf"^/v1/({_PARENT}/hyperparameterTuningJobs/[^/:]+):cancel$"), "CancelHyperparameterTuningJob"),
]


def _to_json(service: Any, job: Any) -> bytes:
    from google.cloud import aiplatform_v1

    with service.lock:
        return aiplatform_v1.HyperparameterTuningJob.to_json(job, use_integers_for_enums=False, indent=None).encode()


class TuningRoutes:
    """The REST routes; the class they are mixed into has ``tuning`` (a ``TuningJobs``) and ``lock``."""

    tuning: Any
    lock: Any

    def CreateHyperparameterTuningJob(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        from google.cloud import aiplatform_v1

        try:
            job = aiplatform_v1.HyperparameterTuningJob.from_json(body or b"{}", ignore_unknown_fields=False)
        except Exception as error:
            raise ApiError(400, f"Invalid JSON payload received. {error}") from None
        run = self.tuning.create(parent, job)
        answer = _to_json(self, run.job)  # as created (QUEUED), before the run moves it on
        run.start()
        return 200, answer

    def GetHyperparameterTuningJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, _to_json(self, self.tuning.named(name).job)

    def ListHyperparameterTuningJobs(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        page, token = self.tuning.list(parent, args.get("filter", ""), int(args.get("pageSize") or 100),
                                       args.get("pageToken") or "")
        answer: dict[str, Any] = {"hyperparameterTuningJobs": [json.loads(_to_json(self, j)) for j in page]}
        if token:
            answer["nextPageToken"] = token
        return 200, answer

    def CancelHyperparameterTuningJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        self.tuning.cancel(name)
        return 200, {}

    def DeleteHyperparameterTuningJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, {"name": self.tuning.delete(name), "done": True, "response": {"@type": EMPTY}}


def grpc_methods(service: Any) -> dict[str, tuple[Callable[[Any], bytes], Any]]:
    """gRPC method name -> (request message in, serialized response out; the request type), over
    ``service`` (a ``vertex.JobService``)."""
    from google.cloud import aiplatform_v1 as v1
    from google.longrunning import operations_pb2

    def create(request: Any) -> bytes:
        run = service.tuning.create(request.parent, request.hyperparameter_tuning_job)
        with service.lock:
            answer = v1.HyperparameterTuningJob.serialize(run.job)
        run.start()
        return answer

    def get(request: Any) -> bytes:
        with service.lock:
            return v1.HyperparameterTuningJob.serialize(service.tuning.named(request.name).job)

    def list_jobs(request: Any) -> bytes:
        page, token = service.tuning.list(request.parent, request.filter, request.page_size, request.page_token)
        with service.lock:
            return v1.ListHyperparameterTuningJobsResponse.serialize(
                v1.ListHyperparameterTuningJobsResponse(hyperparameter_tuning_jobs=page, next_page_token=token))

    def cancel(request: Any) -> bytes:
        service.tuning.cancel(request.name)
        return b""  # google.protobuf.Empty

    def delete(request: Any) -> bytes:
        from google.protobuf import any_pb2

        return operations_pb2.Operation(name=service.tuning.delete(request.name), done=True,
                                        response=any_pb2.Any(type_url=EMPTY)).SerializeToString()

    return {"CreateHyperparameterTuningJob": (create, v1.CreateHyperparameterTuningJobRequest),
            "GetHyperparameterTuningJob": (get, v1.GetHyperparameterTuningJobRequest),
            "ListHyperparameterTuningJobs": (list_jobs, v1.ListHyperparameterTuningJobsRequest),
            "CancelHyperparameterTuningJob": (cancel, v1.CancelHyperparameterTuningJobRequest),
            "DeleteHyperparameterTuningJob": (delete, v1.DeleteHyperparameterTuningJobRequest)}
