"""The Azure ML emulator's workspace data plane (``https://<region>.api.azureml.ms``, or ``/api`` under
the server's base URL): workspace discovery, run history (run, run details with the log files'
URLs, run data with the run's outputs, a run's children) and the data and model registries'
``batchGetResolvedUris``, which turn an output's asset id into its storage URI.

That is what ``ml_client.jobs.stream`` (run details, then each log file's URL), ``jobs.download``
(run data, the outputs' URIs, then the blobs) and ``jobs.list(parent_job_name=...)`` (children)
call. Every run has the output ``default`` (Azure ML's artifact store of the run:
``azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.<job>/``, holding
``user_logs/`` and ``outputs/``) besides its named outputs. A sweep job's children are its
trials' runs (:mod:`~cloudtrain.emulators.azureml_sweep`), in the order they were created, with their
status, times, tags and properties; a command job has none.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cloudtrain.emulators.azureml_answers import Response, azure_error

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.emulators.azureml_service import AzureMLService

ARTIFACT_STORE = "workspaceartifactstore"
_WORKSPACE = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+"
#: A job output's type -> the asset type run history names (models resolve in the model registry,
#: the others in the data registry).
MODEL_TYPES = {"custom_model": "CustomModel", "mlflow_model": "MLFlowModel", "triton_model": "TritonModel"}


def output_asset_id(service: "AzureMLService", job: str, output: str) -> str:
    """The asset id Azure ML gives a job's output (resolved by ``batchGetResolvedUris``)."""
    return f"azureml://locations/{service.region}/workspaces/{service.workspace_id}/data/azureml_{job}_output_data_{output}/versions/1"


class RunHistory:
    """Answers the data-plane paths of one :class:`~cloudtrain.emulators.azureml_service.AzureMLService`."""

    def __init__(self, service: "AzureMLService") -> None:
        self.service = service
        self.routes = [
            ("GET", r"/discovery/?$", self.discovery),
            ("GET", r"/history/v1\.0" + _WORKSPACE + r"/(?:experiments/[^/]+/|experimentids/[^/]+/)?runs/(?P<name>[^/]+)/children$",
             self.children),
            ("GET", r".*/runs/(?P<name>[^/]+)/details$", self.details),
            ("GET", r".*/runs/(?P<name>[^/]+)$", self.details),
            ("POST", r"/history/v1\.0" + _WORKSPACE + r"/rundata$", self.run_data),
            ("POST", r"/data/v1\.0" + _WORKSPACE + r"/dataversion/batchGetResolvedUris$", self.resolve_data),
            ("POST", r"/modelregistry/v1\.0" + _WORKSPACE + r"/models/batchGetResolvedUris$", self.resolve_models),
        ]
        #: How many times each run's details were read (``jobs.stream`` reads them while it follows a run).
        self.detail_reads: dict[str, int] = {}

    def __call__(self, request: Any, path: str) -> Response:
        for method, pattern, handler in self.routes:
            match = re.match(pattern, path)
            if match and request.method == method:
                return handler(request, **{k: unquote(v) for k, v in match.groupdict().items()})
        self.service.unhandled.append((request.method, request.url))
        return azure_error(404, "NotFound", f"emulator: no run history route for {request.method} {path}")

    # -- routes ------------------------------------------------------------------------------------

    def discovery(self, request: Any) -> Response:
        base = self.service.api_base
        return 200, {}, {**{k: base for k in ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling",
                                             "modelmanagement", "pipelines")}, "studio": "https://ml.azure.com"}

    def details(self, request: Any, name: str) -> Response:
        service = self.service
        with service.lock:
            run = service.runs.get(name)
            if run is None:
                return azure_error(404, "UserError", f"run {name} not found")
            self.detail_reads[name] = self.detail_reads.get(name, 0) + 1
            props = service.jobs[name]["properties"]
            body = {"runId": name, "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "status": run["status"],
                    "startTimeUtc": run["startTimeUtc"], "endTimeUtc": run["endTimeUtc"], "warnings": list(run.get("warnings") or []),
                    "target": props.get("computeId", "serverless"), "properties": {},
                    "logFiles": {log: f"{service.blob_base}/{service.container}/{blob}?sv=2021-08-06&sr=b&sig=emulator"
                                 for log, blob in run["logFiles"].items()}}
            if run["error"]:
                body["error"] = {"error": run["error"]}
        return 200, {}, body

    def children(self, request: Any, name: str) -> Response:
        with self.service.lock:
            if name not in self.service.runs:
                return azure_error(404, "UserError", f"run {name} not found")
            value = [self.run_object(child) for child, run in self.service.runs.items() if run.get("parent") == name]
        return 200, {}, {"value": value, "nextLink": None}

    def run_object(self, name: str) -> dict[str, Any]:
        """A run as run history lists it (under the lock)."""
        run, props = self.service.runs[name], self.service.jobs[name]["properties"]
        return {"runId": name, "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "parentRunId": run.get("parent"),
                "rootRunId": run.get("parent") or name, "status": run["status"], "displayName": props.get("displayName"),
                "experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, props.get("experimentName") or "Default")),
                "createdUtc": (props.get("creationContext") or {}).get("createdAt"), "startTimeUtc": run["startTimeUtc"],
                "endTimeUtc": run["endTimeUtc"], "tags": dict(props.get("tags") or {}), "properties": dict(props.get("properties") or {})}

    def run_data(self, request: Any) -> Response:
        service = self.service
        name = (json.loads(request.get_data() or b"{}") or {}).get("runId") or ""
        with service.lock:
            run = service.runs.get(name)
            if run is None:
                return azure_error(404, "UserError", f"run {name} not found")
            props = service.jobs[name]["properties"]
            outputs = {"default": {"assetId": output_asset_id(service, name, "default"), "type": "uri_folder"}}
            for output, item in (props.get("outputs") or {}).items():
                kind = item.get("jobOutputType", "uri_folder")
                outputs[output] = {"assetId": output_asset_id(service, name, output), "type": MODEL_TYPES.get(kind, kind)}
            metadata = {"runId": name, "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "status": run["status"],
                        "experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, props.get("experimentName") or "Default")),
                        "startTimeUtc": run["startTimeUtc"], "endTimeUtc": run["endTimeUtc"], "outputs": outputs}
        return 200, {}, {"runMetadata": metadata, "runDefinition": None, "jobSpecification": None}

    def output_uris(self) -> dict[str, tuple[str, str]]:
        """asset id -> (output type, storage URI) of every job's outputs."""
        service, found = self.service, {}
        with service.lock:
            for job, doc in service.jobs.items():
                found[output_asset_id(service, job, "default")] = ("uri_folder",
                                                                  f"azureml://datastores/{ARTIFACT_STORE}/paths/ExperimentRun/dcid.{job}/")
                for output, item in (doc["properties"].get("outputs") or {}).items():
                    uri = item.get("uri") or f"azureml://datastores/workspaceblobstore/paths/azureml/{job}/{output}/"
                    found[output_asset_id(service, job, output)] = (item.get("jobOutputType", "uri_folder"), uri)
        return found

    def resolve_data(self, request: Any) -> Response:
        wanted = (json.loads(request.get_data() or b"{}") or {}).get("values") or []
        known = self.output_uris()
        return 200, {}, {"values": {asset: {"uri": known[asset][1], "type": known[asset][0]} for asset in wanted if asset in known}}

    def resolve_models(self, request: Any) -> Response:
        wanted = (json.loads(request.get_data() or b"{}") or {}).get("values") or []
        known = self.output_uris()
        return 200, {}, {"values": {asset: {"path": known[asset][1], "type": known[asset][0]} for asset in wanted if asset in known}}
