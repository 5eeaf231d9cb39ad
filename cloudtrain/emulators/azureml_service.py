"""The Azure ML emulator's wire protocol: ARM (workspace, code assets, environments, model assets,
datastores, computes, jobs), the workspace data plane (discovery, run history, resolved output URIs)
and Blob storage, as one WSGI application (environments in
:mod:`~cloudtrain.emulators.azureml_environments`, models in :mod:`~cloudtrain.emulators.azureml_models`,
the data plane in :mod:`~cloudtrain.emulators.azureml_run_history`, storage in
:mod:`~cloudtrain.emulators.azureml_storage`).

The same application answers the real host names (``management.azure.com``,
``<region>.api.azureml.ms``, ``<account>.blob.core.windows.net``, ``<vault>.vault.azure.net``) when the SDK's HTTP is intercepted
in-process, and paths under one base URL when it runs as an HTTPS server (``/subscriptions/...``
for ARM, ``/api/...`` for run history, ``/blob/<container>/...`` for storage, and storage and Key
Vault by their real names too, which the emulator's proxy tunnels to the server; Key Vault in
:mod:`~cloudtrain.emulators.azureml_key_vault`). Blobs live in files
under ``<root>/storage/<container>/``. Each call has an operation name for fault injection
(:func:`operation_of`): ``MachineLearningServices.<Resource>.<Verb>`` (``...Jobs.CreateOrUpdate``,
``...Jobs.Get``...), ``RunHistory.<Verb>``, ``Storage.Blob.<Verb>``.

A PUT of a job that exists is accepted when it changes nothing but the fields Azure ML lets one
update (tags, description, display name, properties), as a retried create does; anything else is
refused with ``UserError: ... already exists``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from cloudtrain.emulators.azureml_answers import now_iso
from cloudtrain.emulators.azureml_environments import Environments
from cloudtrain.emulators.azureml_models import Models
from cloudtrain.emulators.azureml_key_vault import VAULT_SUFFIX, KeyVaults
from cloudtrain.emulators.azureml_run_history import ARTIFACT_STORE, RunHistory
from cloudtrain.emulators.azureml_storage import BlobStore, blob_response

ARM_HOST = "management.azure.com"
WORKSPACE_PATH = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                  r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
DATASTORES = ("workspaceblobstore", ARTIFACT_STORE)
MUTABLE_JOB_FIELDS = {"tags", "description", "displayName", "properties", "status", "services"}

Handler = Callable[..., tuple[int, dict[str, str], Any]]


def error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {"x-ms-error-code": code}, {"error": {"code": code, "message": message}}


def split_service(host: str, path: str) -> tuple[str, str]:
    """(``arm`` | ``api`` | ``blob`` | ``vault``, path inside that service) for a request's host and path."""
    host = host.split(":")[0].lower()
    if host.endswith(".blob.core.windows.net"):
        return "blob", path
    if host.endswith(VAULT_SUFFIX):
        return "vault", path
    if host.endswith(".api.azureml.ms"):
        return "api", path
    if host != ARM_HOST and path.startswith("/blob/"):
        return "blob", path[len("/blob"):]
    if host != ARM_HOST and path.startswith("/api/"):
        return "api", path[len("/api"):]
    return "arm", path


_ARM_OPERATIONS = [
    ("GET", r"/codes/[^/]+/versions$", "Codes.List"), ("POST", r"/codes/.+/startPendingUpload$", "Codes.StartPendingUpload"),
    ("PUT", r"/codes/", "Codes.CreateOrUpdate"), ("GET", r"/codes/", "Codes.Get"),
    ("POST", r"/datastores/.+/listSecrets$", "Datastores.ListSecrets"), ("GET", r"/datastores", "Datastores.Get"),
    ("GET", r"/environments/[^/]+/versions$", "Environments.List"), ("PUT", r"/environments/", "Environments.CreateOrUpdate"),
    ("GET", r"/environments/", "Environments.Get"), ("GET", r"/computes/", "Computes.Get"),
    ("PUT", r"/models/", "Models.CreateOrUpdate"), ("GET", r"/models", "Models.Get"),
    ("PUT", r"/jobs/[^/]+$", "Jobs.CreateOrUpdate"), ("GET", r"/jobs/[^/]+$", "Jobs.Get"), ("GET", r"/jobs$", "Jobs.List"),
    ("POST", r"/jobs/[^/]+/cancel$", "Jobs.Cancel"), ("GET", r"/jobs/[^/]+/cancelstatus$", "Jobs.CancelStatus"),
    ("GET", r"$", "Workspaces.Get"),
]


def operation_of(environ: dict[str, Any]) -> str | None:
    """The operation name of a WSGI request (for :class:`cloudtrain.emulators.common.Faults`)."""
    method = environ.get("REQUEST_METHOD", "GET")
    service, path = split_service(environ.get("HTTP_HOST", ""), environ.get("PATH_INFO", ""))
    if service == "blob":
        return f"Storage.Blob.{method.capitalize()}"
    if service == "vault":
        return f"KeyVault.Secrets.{method.capitalize()}"
    if service == "api":
        for suffix, name in (("/details", "GetRunDetails"), ("/children", "GetChildren"), ("/rundata", "GetRunData"),
                             ("/batchGetResolvedUris", "BatchGetResolvedUris")):
            if path.endswith(suffix):
                return f"RunHistory.{name}"
        return "RunHistory.Get"
    match = re.match(WORKSPACE_PATH, path)
    if not match:
        return "MachineLearningServices.Other"
    tail = path[match.end():]
    for verb, pattern, name in _ARM_OPERATIONS:
        if verb == method and re.match(pattern, tail):
            return f"MachineLearningServices.{name}"
    return "MachineLearningServices.Other"


class AzureMLService:
    """The control plane and storage state, and the WSGI entry point (``service(environ, start_response)``).

    ``start_job(job_document)`` is called for each new job (the emulator runs it) and
    ``cancel_job(name)`` for each cancel."""

    def __init__(self, root: Path, *, region: str, storage_account: str, container: str, base: str | None,
                 start_job: Callable[[dict[str, Any]], None], cancel_job: Callable[[str], None], token: str = "",
                 tenant: str = "00000000-0000-0000-0000-000000000000") -> None:
        self.region, self.account, self.container = region, storage_account, container
        self.base = base
        self.blob_base = f"{base}/blob" if base else f"https://{storage_account}.blob.core.windows.net"
        self.api_base = f"{base}/api" if base else f"https://{region}.api.azureml.ms"
        self.tracking_url: str | None = None  # the MLflow tracking server's URL, once it is up (azureml_mlflow)
        self.arm_base = base or f"https://{ARM_HOST}"
        self.blobs = BlobStore(root / "storage")
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, dict[str, Any]] = {}  # each job's properties as first sent
        self.runs: dict[str, dict[str, Any]] = {}  # run history: status, times, error, log files
        self.codes: dict[tuple[str, str], dict[str, Any]] = {}
        self.workspace_id = str(uuid.uuid4())
        self.environments: dict[tuple[str, str, str], Environments] = {}  # per workspace
        self.model_assets: dict[tuple[str, str, str], Models] = {}  # per workspace
        self.run_history = RunHistory(self)
        self.key_vaults = KeyVaults(token, tenant)
        self.lock = threading.RLock()
        self.unhandled: list[tuple[str, str]] = []
        self._start_job, self._cancel_job = start_job, cancel_job
        ws = WORKSPACE_PATH
        self.arm_routes: list[tuple[str, str, Handler]] = [
            ("GET", ws + r"/codes/(?P<name>[^/]+)/versions$", self.list_code_versions),
            ("POST", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload$", self.start_pending_upload),
            ("PUT", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self.put_code),
            ("GET", ws + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self.get_code),
            ("GET", ws + r"/datastores$", self.list_datastores),
            ("GET", ws + r"/datastores/(?P<name>[^/]+)$", self.get_datastore),
            ("POST", ws + r"/datastores/(?P<name>[^/]+)/listSecrets$", self.list_secrets),
            ("GET", ws + r"/environments/(?P<name>[^/]+)/versions$", self.list_environment_versions),
            ("PUT", ws + r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self.put_environment),
            ("GET", ws + r"/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self.get_environment),
            ("GET", ws + r"/computes/(?P<name>[^/]+)$", self.get_compute),
            ("GET", ws + r"/models(?P<rest>(?:/[^/]+){0,3})$", self.models),
            ("PUT", ws + r"/models(?P<rest>/[^/]+/versions/[^/]+)$", self.models),
            ("GET", ws + r"/jobs$", self.list_jobs),
            ("PUT", ws + r"/jobs/(?P<name>[^/]+)$", self.put_job),
            ("GET", ws + r"/jobs/(?P<name>[^/]+)$", self.get_job),
            ("POST", ws + r"/jobs/(?P<name>[^/]+)/cancel$", self.cancel),
            ("GET", ws + r"/jobs/(?P<name>[^/]+)/cancelstatus$", self.cancel_status),
            ("GET", ws + r"$", self.get_workspace),
        ]

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        status, headers, body = self.dispatch(request)
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        else:
            payload = body if isinstance(body, bytes) else (body or "").encode()
        headers = {"x-ms-request-id": str(uuid.uuid4()), **headers}
        if request.method == "HEAD":
            headers.setdefault("Content-Length", str(len(payload)))
            payload = b""
        else:
            headers["Content-Length"] = str(len(payload))
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found",
                  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Status")
        start_response(f"{status} {reason}", list(headers.items()))
        return [payload]

    def dispatch(self, request: Any) -> tuple[int, dict[str, str], Any]:
        service, path = split_service(request.host, request.path)
        if service == "blob":
            return self.blob(request, path)
        if service == "api":
            return self.run_history(request, path)
        if service == "vault":
            return self.key_vaults(request, request.host, path)
        for method, pattern, handler in self.arm_routes:
            match = re.match(pattern, path)
            if match and request.method == method:
                return handler(request, **match.groupdict())
        self.unhandled.append((request.method, request.url))
        return error(404, "NotFound", f"emulator: no route for {request.method} {request.path}")

    # -- workspace and assets --------------------------------------------------------------------

    def resource_id(self, sub: str, rg: str, ws: str, tail: str = "") -> str:
        base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
        return f"{base}/{tail}" if tail else base

    def get_workspace(self, request: Any, sub: str, rg: str, ws: str) -> tuple[int, dict[str, str], Any]:
        rid = self.resource_id(sub, rg, ws)
        return 200, {}, {"id": rid, "name": ws, "location": self.region, "type": "Microsoft.MachineLearningServices/workspaces",
                         "properties": {"discoveryUrl": f"{self.api_base}/discovery", "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, rid)),
                                        "mlFlowTrackingUri": self.mlflow_tracking_uri(rid)}}

    def mlflow_tracking_uri(self, workspace_id: str) -> str:
        """The workspace's MLflow tracking URI: the emulator's tracking server (plain HTTP, which MLflow
        reads without azureml-mlflow; Azure ML answers an ``azureml://`` URI that only that plugin reads)."""
        if self.tracking_url:
            return f"{self.tracking_url}/mlflow/v1.0{workspace_id}"
        return f"azureml://{self.region}.api.azureml.ms/mlflow/v1.0{workspace_id}"

    def list_code_versions(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        wanted = request.args.get("hash")
        with self.lock:
            found = [doc for (code, _), doc in self.codes.items()
                     if code == name and (not wanted or doc["properties"].get("contentHash") == wanted)]
        return 200, {}, {"value": found}

    def start_pending_upload(self, request: Any, sub: str, rg: str, ws: str, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        # a container of its own for each code snapshot, as Azure ML does; the SDK uploads the
        # directory under its own name there and records <blobUri>/<container>/<directory> as codeUri
        container = re.sub(r"[^a-z0-9-]", "-", name.lower())[:63]
        blob_uri = self.blob_base
        sas = f"{self.blob_base}/{container}?sv=2021-08-06&sr=c&sig=emulator"
        return 200, {}, {"pendingUploadId": str(uuid.uuid4()), "pendingUploadType": "TemporaryBlobReference",
                         "blobReferenceForConsumption": {"blobUri": blob_uri, "storageAccountArmId": f"/subscriptions/{sub}/storage/{self.account}",
                                                         "credential": {"credentialType": "SAS", "sasUri": sas}}}

    def put_code(self, request: Any, sub: str, rg: str, ws: str, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        doc = json.loads(request.get_data() or b"{}")
        doc.update(id=self.resource_id(sub, rg, ws, f"codes/{name}/versions/{version}"), name=version,
                   type="Microsoft.MachineLearningServices/workspaces/codes/versions")
        with self.lock:
            created = (name, version) not in self.codes
            self.codes[(name, version)] = doc
        return (201 if created else 200), {}, doc

    def get_code(self, request: Any, sub: str, rg: str, ws: str, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            doc = self.codes.get((name, version))
        return (200, {}, doc) if doc else error(404, "UserError", f"code {name}:{version} not found")

    def datastore(self, sub: str, rg: str, ws: str, name: str = "workspaceblobstore") -> dict[str, Any]:
        """A datastore of the workspace: ``workspaceblobstore`` (the default) or ``workspaceartifactstore``
        (runs' logs and ./outputs), both in the emulator's one container."""
        return {"id": self.resource_id(sub, rg, ws, f"datastores/{name}"), "name": name,
                "properties": {"datastoreType": "AzureBlob", "accountName": self.account, "containerName": self.container,
                               "endpoint": "core.windows.net", "protocol": "https", "isDefault": name == "workspaceblobstore",
                               "credentials": {"credentialsType": "AccountKey"}}}

    def list_datastores(self, request: Any, sub: str, rg: str, ws: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"value": [self.datastore(sub, rg, ws, name) for name in DATASTORES]}

    def get_datastore(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        if name not in DATASTORES:
            return error(404, "UserError", f"datastore {name} not found (the emulator has {' and '.join(DATASTORES)})")
        return 200, {}, self.datastore(sub, rg, ws, name)

    def list_secrets(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"secretsType": "AccountKey", "key": base64.b64encode(b"emulator-storage-key").decode()}

    def workspace_environments(self, sub: str, rg: str, ws: str) -> Environments:
        with self.lock:
            return self.environments.setdefault((sub, rg, ws), Environments(lambda tail: self.resource_id(sub, rg, ws, tail)))

    def put_environment(self, request: Any, sub: str, rg: str, ws: str, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        return self.workspace_environments(sub, rg, ws).put(name, version, request.get_data())

    def get_environment(self, request: Any, sub: str, rg: str, ws: str, name: str, version: str) -> tuple[int, dict[str, str], Any]:
        return self.workspace_environments(sub, rg, ws).get(name, version)

    def list_environment_versions(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        return self.workspace_environments(sub, rg, ws).list(name)

    def workspace_models(self, sub: str, rg: str, ws: str) -> Models:
        with self.lock:
            return self.model_assets.setdefault((sub, rg, ws), Models(lambda tail: self.resource_id(sub, rg, ws, tail)))

    def models(self, request: Any, sub: str, rg: str, ws: str, rest: str) -> tuple[int, dict[str, str], Any]:
        return self.workspace_models(sub, rg, ws).answer(request.method, rest, request.get_data())

    def get_compute(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"id": self.resource_id(sub, rg, ws, f"computes/{name}"), "name": name, "location": self.region,
                         "properties": {"computeType": "AmlCompute", "provisioningState": "Succeeded",
                                        "properties": {"vmSize": "Standard_D8as_v5", "scaleSettings": {"maxNodeCount": 4, "minNodeCount": 0}}}}

    # -- jobs ----------------------------------------------------------------------------------------

    def job_view(self, name: str) -> dict[str, Any]:
        with self.lock:
            doc = json.loads(json.dumps(self.jobs[name]))
            doc["properties"]["status"] = self.runs[name]["status"]
        return doc

    def put_job(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        doc = json.loads(request.get_data() or b"{}")
        props = doc.get("properties") or {}
        if props.get("jobType") not in ("Command", "Sweep"):
            return error(400, "UserError", f"the emulator runs command and sweep jobs, not {props.get('jobType')!r}")
        if props["jobType"] == "Sweep":
            from cloudtrain.emulators.azureml_sweep import check_sweep

            problem = check_sweep(props)
            if problem:
                return error(400, "UserError", problem)
        for key in ("command", "environmentId"):
            if not (props.get("trial") or props).get(key):
                return error(400, "UserError", f"properties.{key} is required")
        missing = self.workspace_environments(sub, rg, ws).missing((props.get("trial") or props)["environmentId"])
        if missing:
            return error(404, "UserError", missing)
        with self.lock:
            if name in self.jobs:
                old, sent = self.jobs[name]["properties"], self.requests[name]
                changed = sorted(k for k in set(sent) | set(props) if k not in MUTABLE_JOB_FIELDS and sent.get(k) != props.get(k))
                if changed:
                    return error(400, "UserError", f"a job named {name} already exists; only tags, description, display name "
                                 f"and properties can be updated (changed: {', '.join(changed)})")
                for key in ("tags", "description", "displayName"):
                    if key in props:
                        old[key] = props[key]
                return 200, {}, self.job_view(name)
            self.requests[name] = json.loads(json.dumps(props))  # as sent, to compare with a retried PUT
            self.record_job((sub, rg, ws), name, doc)
            view = self.job_view(name)
        self._start_job(json.loads(json.dumps(doc)))
        return 201, {}, view

    def record_job(self, workspace: tuple[str, str, str], name: str, doc: dict[str, Any], parent: str | None = None) -> None:
        """Record a created job and its run (``NotStarted``); ``parent``: the sweep job of a trial."""
        sub, rg, ws = workspace
        props = doc.setdefault("properties", {})
        props.setdefault("experimentName", "Default")
        props.setdefault("displayName", name)
        props.setdefault("properties", {})  # Azure ML always answers one (jobs.stream reads it), a trial's too
        props["services"] = {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}?wsid={self.resource_id(sub, rg, ws)}",
                                        "jobServiceType": "Studio"}}
        props.setdefault("creationContext", {"createdAt": now_iso(), "createdBy": "cloudtrain emulator"})
        doc.update(id=self.resource_id(sub, rg, ws, f"jobs/{name}"), name=name, type="Microsoft.MachineLearningServices/workspaces/jobs",
                   properties=props, systemData={"createdAt": now_iso(), "createdBy": "cloudtrain emulator"})
        with self.lock:
            self.jobs[name] = doc
            self.runs[name] = {"status": "NotStarted", "logFiles": {}, "error": None, "startTimeUtc": None, "endTimeUtc": None,
                               "workspace": (sub, rg, ws), "history": ["NotStarted"], "parent": parent}

    def get_job(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if name not in self.jobs:
                return error(404, "UserError", f"job {name} not found")
            return 200, {}, self.job_view(name)

    def list_jobs(self, request: Any, sub: str, rg: str, ws: str) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            return 200, {}, {"value": [self.job_view(name) for name in self.jobs if not self.runs[name].get("parent")]}

    def cancel(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if name not in self.jobs:
                return error(404, "UserError", f"job {name} not found")
        self._cancel_job(name)
        location = f"{self.arm_base}{self.resource_id(sub, rg, ws, f'jobs/{name}/cancelstatus')}?api-version=2024-04-01"
        return 202, {"Location": location, "Retry-After": "1"}, b""

    def cancel_status(self, request: Any, sub: str, rg: str, ws: str, name: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, b""

    def blob(self, request: Any, path: str) -> tuple[int, dict[str, str], Any]:
        return blob_response(self.blobs, request, path, self.blob_base)

    # -- helpers for the job runner ---------------------------------------------------------------

    def set_run(self, name: str, **changes: Any) -> None:
        with self.lock:
            run = self.runs[name]
            if "status" in changes and changes["status"] != run["status"]:
                run["history"].append(changes["status"])
            run.update(changes)

    def run_status(self, name: str) -> str:
        with self.lock:
            return self.runs[name]["status"]

    def set_output_uri(self, name: str, output: str, uri: str) -> None:
        with self.lock:
            outputs = self.jobs[name]["properties"].setdefault("outputs", {})
            outputs.setdefault(output, {"jobOutputType": "uri_folder"})["uri"] = uri

    def blob_for_uri(self, uri: str) -> tuple[str, str] | None:
        """(container, blob name prefix) of an ``azureml://datastores/<workspaceblobstore|workspaceartifactstore>/paths/...``
        URI or a URL of this emulator's storage; None for anything else."""
        match = re.match(r"azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?datastores/"
                         r"(?P<ds>[^/]+)/paths/(?P<path>.*)$", uri, flags=re.IGNORECASE)
        if match:
            return (self.container, match.group("path")) if match.group("ds") in DATASTORES else None
        for base in (self.blob_base, self.base):  # the SDK records code URIs without the server's /blob prefix
            if base and uri.startswith(base + "/"):
                container, _, name = uri[len(base) + 1:].split("?", 1)[0].partition("/")
                return container, unquote(name)
        return None
