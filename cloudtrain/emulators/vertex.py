"""A local Vertex AI on 127.0.0.1 that users' unchanged Google SDK code reaches through the
environment alone (:meth:`VertexEmulator.environment`, printed by ``cloudtrain emulator start``):

- the JobService (custom jobs), PipelineService (custom training pipelines,
  :mod:`~cloudtrain.emulators.vertex_pipelines`) and Cloud Logging's ``ListLogEntries``, over gRPC
  (:mod:`~cloudtrain.emulators.vertex_grpc`) and REST, at their real hostnames
  (``us-central1-aiplatform.googleapis.com``..., ``logging.googleapis.com``): a CONNECT proxy
  (:mod:`cloudtrain.emulators.proxy`; ``grpc_proxy``, ``HTTPS_PROXY``) tunnels them to one TLS
  address (:mod:`~cloudtrain.emulators.vertex_front`) trusted through
  ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` and ``REQUESTS_CA_BUNDLE`` (certifi's roots + the emulator's
  CA). No variable moves the aiplatform SDK's endpoint: its clients always get an explicit
  regional ``api_endpoint`` (``initializer.get_client_options``), which the generated clients put
  before ``GOOGLE_CLOUD_UNIVERSE_DOMAIN`` and the mTLS variables; hence the proxy;
- the same REST routes in plain HTTP on :attr:`VertexEmulator.endpoint_url`
  (``CLOUDTRAIN_VERTEX_API_ENDPOINT``: cloudtrain's provider, or a client given
  ``api_endpoint=...`` and ``transport="rest"``);
- Application Default Credentials from a metadata server (:mod:`~cloudtrain.emulators.gcp_metadata`;
  ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``), for the emulator's project; credentials the user
  already has (gcloud's ADC file, a key file) get their tokens from the emulator's
  ``oauth2.googleapis.com/token`` through the proxy, so they work offline too;
- Cloud Storage (:mod:`~cloudtrain.emulators.vertex_storage`; ``STORAGE_EMULATOR_HOST``), where a
  bucket is created on its first upload;
- Secret Manager (:mod:`~cloudtrain.emulators.gcp_secret_manager`) at ``secretmanager.googleapis.com``
  over gRPC and REST, through the same proxy and TLS front (``gcp_secret`` references in jobs).

Jobs see the same variables, as a Vertex replica sees Google's services, and run as
:mod:`cloudtrain.emulators.vertex_jobs` describes (container commands or ``python_package_spec``,
``/gcs``).

REST routes (``/v1/projects/{p}/locations/{l}/...``): ``customJobs`` POST (create) and GET (list, with
``filter`` terms ``labels.KEY="VALUE"``, ``display_name="..."`` and ``state=JOB_STATE_...`` joined by
AND, ``pageSize`` / ``pageToken``), ``customJobs/{id}`` GET and DELETE, ``customJobs/{id}:cancel``
POST; the same for ``trainingPipelines`` and ``hyperparameterTuningJobs``
(:mod:`~cloudtrain.emulators.vertex_tuning`, whose trials are custom jobs); ``POST /v2/entries:list`` (Cloud Logging). Requests are
parsed with the SDK's proto-plus ``from_json`` (unknown fields refused); errors are Google's JSON
error body (``{"error": {"code", "message", "status"}}``), which the SDK turns into
``google.api_core.exceptions``. What Vertex refuses beyond the proto parser is in
:mod:`~cloudtrain.emulators.vertex_validation`.

Faults (:class:`cloudtrain.emulators.common.Faults`; operations are ``JobService.CreateCustomJob``,
``JobService.GetCustomJob``, ``JobService.ListCustomJobs``, ``JobService.CancelCustomJob``,
``JobService.DeleteCustomJob``, ``PipelineService.<Method>``, ``Logging.ListLogEntries``), over REST
and gRPC: ``throttle`` answers 429 / RESOURCE_EXHAUSTED, ``server_error`` 503 / UNAVAILABLE,
``drop_after`` processes the call and closes the connection without an answer (a create accepted
whose response is lost; over gRPC, UNAVAILABLE after processing), ``preempt`` interrupts SPOT jobs
once after a checkpoint. Cloud Storage takes the same faults on its own operations
(``Storage.Objects.Insert``, ``Storage.Objects.Get``..., :mod:`~cloudtrain.emulators.vertex_storage`);
the metadata server takes none.
"""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from cloudtrain.emulators.common import INTERNAL_HEADER, Emulator, FaultMiddleware, Faults, ServerThread, access_log_handler
from cloudtrain.emulators.gcloud_cli import gcloud_environment, gcloud_files
from cloudtrain.emulators.job_runner import JobSettings
from cloudtrain.emulators.vertex_jobs import TERMINAL, CustomJobRun, now
from cloudtrain.emulators.vertex_logging import InvalidRequest, LogEntries
from cloudtrain.emulators.vertex_pipelines import PipelineRoutes, TrainingPipelines
from cloudtrain.emulators.vertex_tuning import TuningJobs
from cloudtrain.emulators.vertex_tuning_routes import TUNING_ROUTES, TuningRoutes
from cloudtrain.emulators.vertex_validation import TRAINING_MACHINE_SERIES, ApiError, filter_terms, list_page, matches, validate_job  # noqa: F401 (re-exported)
from cloudtrain.providers.process import free_port

DEFAULT_PROJECT = "emulator-project"
DEFAULT_LOCATION = "us-central1"
DEFAULT_BUCKET = "cloudtrain-staging"
OAUTH_HOST = "oauth2.googleapis.com"
#: The hostnames the emulator answers through the proxy: aiplatform's regional and global endpoints,
#: Cloud Logging, Secret Manager, and Google's OAuth token endpoint (for the credentials a user already has).
API_HOSTS = ("*-aiplatform.googleapis.com", "aiplatform.googleapis.com", "logging.googleapis.com", "secretmanager.googleapis.com",
             OAUTH_HOST)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_PARENT = r"projects/[^/]+/locations/[^/]+"
_ROUTES = [
    ("POST", re.compile(rf"^/v1/({_PARENT})/customJobs$"), "CreateCustomJob"),
    ("GET", re.compile(rf"^/v1/({_PARENT})/customJobs$"), "ListCustomJobs"),
    ("GET", re.compile(rf"^/v1/({_PARENT}/customJobs/[^/:]+)$"), "GetCustomJob"),
    ("DELETE", re.compile(rf"^/v1/({_PARENT}/customJobs/[^/:]+)$"), "DeleteCustomJob"),
    ("POST", re.compile(rf"^/v1/({_PARENT}/customJobs/[^/:]+):cancel$"), "CancelCustomJob"),
    ("POST", re.compile(rf"^/v1/({_PARENT})/trainingPipelines$"), "CreateTrainingPipeline"),
    ("GET", re.compile(rf"^/v1/({_PARENT})/trainingPipelines$"), "ListTrainingPipelines"),
    ("GET", re.compile(rf"^/v1/({_PARENT}/trainingPipelines/[^/:]+)$"), "GetTrainingPipeline"),
    ("DELETE", re.compile(rf"^/v1/({_PARENT}/trainingPipelines/[^/:]+)$"), "DeleteTrainingPipeline"),
    ("POST", re.compile(rf"^/v1/({_PARENT}/trainingPipelines/[^/:]+):cancel$"), "CancelTrainingPipeline"),
    *TUNING_ROUTES,
    ("POST", re.compile(r"^/v2/(entries):list$"), "ListLogEntries"),
]
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE", 412: "FAILED_PRECONDITION"}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 412: "Precondition Failed",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}).encode()


def operation_of(environ: dict[str, Any]) -> str | None:
    method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
    for verb, pattern, name in _ROUTES:
        if verb == method and pattern.match(path):
            return f"{service_of(name)}.{name}"
    return None


def service_of(method: str) -> str:
    """The service an operation belongs to, as fault rules name it (``JobService.CreateCustomJob``)."""
    return "Logging" if method == "ListLogEntries" else "PipelineService" if "TrainingPipeline" in method else "JobService"


def fault_response(kind: str, operation: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    code, message = ((429, f"Quota exceeded for aiplatform.googleapis.com ({operation}): too many requests; retry later")
                     if kind == "throttle" else (503, "The service is currently unavailable."))
    return f"{code} {_REASONS[code]}", [("Content-Type", "application/json")], error_body(code, message)


class JobService(PipelineRoutes, TuningRoutes):
    """The JobService's custom-job operations (over REST here, over gRPC in
    :mod:`~cloudtrain.emulators.vertex_grpc`), the PipelineService's routes and Cloud Logging's
    ``entries:list``, as one WSGI app over the jobs, pipelines and log entries it keeps in memory.
    ``storage``: a ``google.cloud.storage.Client`` factory; ``job_environment``: variables every job gets."""

    def __init__(self, root: Path, settings: JobSettings, storage: Callable[[], Any],
                 job_environment: dict[str, str] | None = None) -> None:
        self.root, self.settings, self.storage = root, settings, storage
        self.job_environment = dict(job_environment or {})
        self.lock = threading.RLock()
        self.logs = LogEntries()
        self.runs: dict[str, CustomJobRun] = {}
        self.pipelines = TrainingPipelines(self)
        self.tuning = TuningJobs(self)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        try:
            code, payload = self.dispatch(request.method, request.path, request.args, request.get_data())
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        except ApiError as error:
            code, body = error.code, error_body(error.code, error.message)
        except InvalidRequest as error:
            code, body = 400, error_body(400, str(error))
        except Exception as error:  # an emulator bug: answer as the service would
            code, body = 500, error_body(500, f"emulator internal error: {type(error).__name__}: {error}")
        start_response(f"{code} {_REASONS.get(code, 'Error')}", [("Content-Type", "application/json"),
                                                                 ("Content-Length", str(len(body)))])
        return [body]

    def dispatch(self, method: str, path: str, args: Any, body: bytes) -> tuple[int, Any]:
        for verb, pattern, name in _ROUTES:
            match = pattern.match(path)
            if match and verb == method:
                return getattr(self, name)(match.group(1), args, body)
        raise ApiError(404, f"the Vertex AI emulator has no route for {method} {path}")

    def _json(self, job: Any) -> bytes:
        from google.cloud import aiplatform_v1

        with self.lock:
            return aiplatform_v1.CustomJob.to_json(job, use_integers_for_enums=False, indent=None).encode()

    def run_named(self, name: str) -> CustomJobRun:
        """The run of the custom job ``name``; NOT_FOUND as Vertex answers when there is none."""
        run = self.runs.get(name)
        if run is None:
            raise ApiError(404, f"The CustomJob does not exist: {name}")
        return run

    # -- the operations, on proto-plus messages (REST below, gRPC in vertex_grpc) ------------------

    def create_custom_job(self, parent: str, job: Any) -> Any:
        """Record ``job`` (an ``aiplatform_v1.CustomJob``) as created (QUEUED); the caller serializes
        its answer (under :attr:`lock`) and then calls ``start()`` on the run returned."""
        from google.cloud import aiplatform_v1

        validate_job(job)
        job_id = str(random.randrange(10**18, 10**19))
        job.name = f"{parent}/customJobs/{job_id}"
        job.state = aiplatform_v1.JobState.JOB_STATE_QUEUED
        job.create_time = job.update_time = now()
        run = CustomJobRun(job, self.root / job_id, self.storage, self.logs, self.settings, self.lock,
                           self.job_environment)
        with self.lock:
            self.runs[job.name] = run
        return run

    def list_custom_jobs(self, parent: str, filter_text: str, page_size: int, page_token: str) -> tuple[list[Any], str]:
        """(one page of the jobs under ``parent`` that match ``filter_text``, newest first; next page token)."""
        terms = filter_terms(filter_text)
        with self.lock:
            runs = [r for n, r in self.runs.items() if n.startswith(parent + "/")]
            jobs = [r.job for r in runs if all(matches(r.job, key, value) for key, value in terms)]
        jobs.sort(key=lambda j: j.create_time, reverse=True)
        return list_page(jobs, page_size, page_token)

    def cancel_custom_job(self, name: str) -> None:
        if not self.run_named(name).cancel():
            raise ApiError(400, f"Cannot cancel {name}: the job is already in a final state")

    def delete_custom_job(self, name: str) -> str:
        """Delete a finished job; the name of the (done) operation."""
        run = self.run_named(name)
        if run.state not in TERMINAL:
            raise ApiError(400, f"Cannot delete {name}: the job is still running; cancel it first")
        with self.lock:
            del self.runs[name]
        return f"{name}/operations/{random.randrange(10**18)}"

    # -- REST routes ------------------------------------------------------------------------------

    def CreateCustomJob(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        from google.cloud import aiplatform_v1

        try:
            job = aiplatform_v1.CustomJob.from_json(body or b"{}", ignore_unknown_fields=False)
        except Exception as error:
            raise ApiError(400, f"Invalid JSON payload received. {error}") from None
        run = self.create_custom_job(parent, job)
        answer = self._json(run.job)  # as created (QUEUED), before the run moves it on
        run.start()
        return 200, answer

    def GetCustomJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, self._json(self.run_named(name).job)

    def ListCustomJobs(self, parent: str, args: Any, body: bytes) -> tuple[int, Any]:
        page, next_token = self.list_custom_jobs(parent, args.get("filter", ""), int(args.get("pageSize") or 100),
                                                 args.get("pageToken") or "")
        answer: dict[str, Any] = {"customJobs": [json.loads(self._json(j)) for j in page]}
        if next_token:
            answer["nextPageToken"] = next_token
        return 200, answer

    def CancelCustomJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        self.cancel_custom_job(name)
        return 200, {}

    def DeleteCustomJob(self, name: str, args: Any, body: bytes) -> tuple[int, Any]:
        return 200, {"name": self.delete_custom_job(name), "done": True}

    def ListLogEntries(self, entries: str, args: Any, body: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        return 200, self.logs.list(request if isinstance(request, dict) else {})


class VertexEmulator(Emulator):
    """A local Vertex AI JobService and Cloud Logging (REST, one :attr:`endpoint_url`) and Cloud
    Storage; ``with VertexEmulator() as emulator:``.

    ``bucket`` is created empty in the storage emulator; ``faults`` (or :attr:`faults` later) injects
    failures; jobs are laid out under ``root`` (a temporary directory, removed on stop, by default)."""

    title = "Vertex AI"
    scratch_prefix = "cloudtrain-vertex-"
    default_fault_operation = "JobService.*"

    def __init__(self, *, project: str = DEFAULT_PROJECT, location: str = DEFAULT_LOCATION, bucket: str = DEFAULT_BUCKET,
                 host: str = "127.0.0.1", port: int = 0, storage_port: int = 0, root: str | Path | None = None,
                 faults: Faults | Iterable[str] | None = None, grace_seconds: float = 10.0, poll_seconds: float = 0.1,
                 proxy_passthrough: bool = True) -> None:
        super().__init__(root, faults, grace_seconds)
        self.project, self.location, self.bucket, self.host = project, location, bucket, host
        self.port, self.storage_port = port, storage_port
        self.poll_seconds = poll_seconds
        self.proxy_passthrough = proxy_passthrough
        self.service: JobService | None = None
        self.authority: Any = None
        self.grpc: Any = None
        self.front: Any = None
        self.metadata: Any = None
        self.gcloud_files: dict[str, Path] = {}  # the gcloud CLI's token and boto files (gcloud_cli)
        self.proxy: Any = None
        self.secrets: Any = None  # Secret Manager (cloudtrain.emulators.gcp_secret_manager)
        self._gcs: Any = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start_services(self) -> None:
        from cloudtrain.emulators.gcp_metadata import MetadataServer, OAuthTokenService
        from cloudtrain.emulators.gcp_secret_manager import HOST as SECRET_MANAGER_HOST, SecretManager
        from cloudtrain.emulators.proxy import ConnectProxy
        from cloudtrain.emulators.vertex_front import ByHost, TlsFront, server_context
        from cloudtrain.emulators.vertex_grpc import Authority, GrpcJobService, GrpcServer
        from cloudtrain.emulators.vertex_storage import StorageServer

        self.storage_port = self.storage_port or free_port(self.host)
        self._gcs = StorageServer(self.host, self.storage_port, self.bucket, self.faults).start()
        self.metadata = MetadataServer(self.project, f"emulator@{self.project}.iam.gserviceaccount.com", self.host,
                                       verbose=self.log_requests).start()
        self.gcloud_files = gcloud_files(self.root / "gcloud", self.metadata.service.token)
        settings = JobSettings(self.faults, self.grace_seconds, self.poll_seconds)
        self.service = JobService(self.root / "jobs", settings, self.storage_client)
        self.secrets = SecretManager()
        app = ByHost({OAUTH_HOST: OAuthTokenService(self.metadata.service), SECRET_MANAGER_HOST: self.secrets},
                      FaultMiddleware(self.service, self.faults, operation_of, fault_response))
        self.http = ServerThread(app, self.host, self.port, request_handler=access_log_handler(self.log_requests)).start()
        self.port = self.http.port
        self.authority = Authority(self.root / "tls")
        self.grpc = GrpcServer((*GrpcJobService(self.service, self.faults).handlers(), self.secrets.grpc_handler()), self.host).start()
        self.front = TlsFront(server_context(self.authority), self.grpc.address, (self.host, self.port), self.host).start()
        self.proxy = ConnectProxy({pattern: self.front.address for pattern in API_HOSTS},
                                  passthrough=self.proxy_passthrough).start()
        self.service.job_environment = self.job_environment()

    def stop_services(self) -> None:
        for part in ("proxy", "front", "grpc", "metadata", "_gcs"):
            if getattr(self, part) is not None:
                getattr(self, part).stop()
                setattr(self, part, None)

    def emulated_jobs(self) -> list[CustomJobRun]:
        if self.service is None:
            return []
        with self.service.lock:  # tuning jobs first: cancelled, they launch no more trials
            return [*self.service.tuning.runs.values(), *self.service.runs.values()]

    # -- what users and tests use -------------------------------------------------------------------

    @property
    def storage_host(self) -> str:
        return f"http://{self.host}:{self.storage_port}"

    def environment(self) -> dict[str, str]:
        """The variables that point the Google SDKs and cloudtrain at this emulator: storage
        (``STORAGE_EMULATOR_HOST``), credentials (the metadata server), the services by their real
        hostnames over gRPC (``grpc_proxy``, ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``) and HTTPS
        (``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``; both bundles hold certifi's roots too, and the proxy
        passes other hosts through), and cloudtrain's REST endpoint (with
        ``CLOUDTRAIN_VERTEX_API_ENDPOINT`` the provider uses anonymous credentials)."""
        return {
            "CLOUDTRAIN_VERTEX_API_ENDPOINT": self.endpoint_url,
            "CLOUDTRAIN_VERTEX_PROJECT": self.project,
            "CLOUDTRAIN_VERTEX_LOCATION": self.location,
            "CLOUDTRAIN_VERTEX_STAGING_BUCKET": f"gs://{self.bucket}",
            **self.job_environment(),
        }

    def job_environment(self) -> dict[str, str]:
        """What the Google SDKs and the gcloud CLI honour, exported to users and set for the
        emulator's jobs (on Vertex a replica reaches Cloud Storage, the metadata server and the API
        the same way)."""
        assert self._gcs is not None and self.metadata is not None
        environment = {"STORAGE_EMULATOR_HOST": self.storage_host, **self.metadata.environment(),
                       **gcloud_environment(self.storage_host, self.project, self.gcloud_files)}
        if self.proxy is not None:
            bundle = str(self.authority.bundle_path)  # certifi's roots + the emulator's CA
            environment.update({**self.proxy.environment(), "REQUESTS_CA_BUNDLE": bundle,
                                "grpc_proxy": self.proxy.url, "no_grpc_proxy": ",".join(LOCAL_HOSTS),
                                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": bundle})
        return environment

    def job_client(self) -> Any:
        """A real ``aiplatform_v1.JobServiceClient`` for this emulator (REST, anonymous)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import aiplatform_v1

        return aiplatform_v1.JobServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                              client_options=ClientOptions(api_endpoint=self.endpoint_url))

    def storage_client(self) -> Any:
        """A real ``google.cloud.storage.Client`` for the storage emulator (the emulator's own: its
        calls are never failed by :attr:`faults`)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=self.project, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.storage_host}, extra_headers={INTERNAL_HEADER: "1"})

    def jobs(self) -> list[Any]:
        """Every custom job the emulator holds (``aiplatform_v1.CustomJob``), oldest first."""
        if self.service is None:
            return []
        with self.service.lock:
            return [run.job for run in self.service.runs.values()]

    def run_of(self, name: str) -> CustomJobRun:
        assert self.service is not None
        return self.service.run_named(name)
