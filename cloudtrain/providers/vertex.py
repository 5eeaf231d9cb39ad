"""Vertex AI custom jobs, through ``google-cloud-aiplatform``'s low-level ``aiplatform_v1`` client.

- ``render``: the ``CustomJob`` in its REST JSON form (:mod:`cloudtrain.providers.vertex_job`),
  parsed by the SDK's own proto JSON parser before anything is sent.
- ``submit``: uploads the code bundle and local inputs to the staging bucket with
  ``google-cloud-storage``, then creates the job. Vertex assigns job ids on the server, so the
  job carries the label ``cloudtrain-submission=<token>``: before each create attempt the provider
  lists the location's jobs with that label and takes the one it finds. A create that failed
  after Vertex accepted it (the response lost, a timeout) or a resubmission of the same plan
  therefore never makes a second job. Throttling (RESOURCE_EXHAUSTED / 429), UNAVAILABLE and 5xx
  are retried with exponential backoff, by the SDK's ``Retry`` for reads and by that look-then-create
  loop for the create.
- ``status``: ``JobState`` mapped through :data:`STATES`; the failure message from ``job.error``;
  the model at ``AIP_MODEL_DIR`` (``<baseOutputDirectory>/model/``) once the job succeeded.
- ``logs``: Cloud Logging, as on Google Cloud (the entries of ``resource.type="ml_job"`` with the
  job's id, through ``google-cloud-logging``, :mod:`cloudtrain.providers.vertex_logs`); with several
  replicas each line is prefixed with its task (``[workerpool1-0]``).
- ``cancel``: ``CancelCustomJob``; the job goes CANCELLING, then CANCELLED.
- sweeps: a ``HyperparameterTuningJob`` (:mod:`cloudtrain.providers.vertex_tuning`).

Credentials: Application Default Credentials (``google.auth.default``: ``gcloud auth
application-default login``, ``GOOGLE_APPLICATION_CREDENTIALS``, or the metadata server), or the
``credentials=`` handed in. Project, location and staging bucket come from the spec or config
(``vertex: {project, location, staging_bucket}``, or ``CLOUDTRAIN_VERTEX_PROJECT`` and friends).

Emulator: ``CLOUDTRAIN_VERTEX_API_ENDPOINT=http://127.0.0.1:PORT`` sends every JobService and Cloud Logging call to
that endpoint over REST, with anonymous credentials; ``STORAGE_EMULATOR_HOST`` does the same for
Cloud Storage (honoured by ``google-cloud-storage`` itself). ``cloudtrain emulator start --cloud
vertex`` prints both.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, Field

from cloudtrain.errors import CloudtrainError, ProviderError
from cloudtrain.providers.base import Capabilities, CreateOutcome, JobRef, JobState, JobStatus, NativeRequest, Provider, is_sweep

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

ENDPOINT_VARIABLE = "CLOUDTRAIN_VERTEX_API_ENDPOINT"
#: Vertex ``JobState`` -> neutral state.
STATES = {
    "JOB_STATE_UNSPECIFIED": JobState.PENDING,
    "JOB_STATE_QUEUED": JobState.PENDING,
    "JOB_STATE_PENDING": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_UPDATING": JobState.RUNNING,
    "JOB_STATE_PAUSED": JobState.PENDING,
    "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.FAILED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_CANCELLING": JobState.CANCELLING,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
}
CREDENTIALS_HINT = ("run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service "
                    "account key file; to use the local emulator, run `cloudtrain emulator start --cloud vertex` and export what it prints")
SETTINGS_EXAMPLES = {"project": "my-project", "staging_bucket": "gs://my-bucket"}


def neutral_state(native: str) -> JobState:
    return STATES.get(native, JobState.PENDING)


class VertexSettings(BaseModel):
    """The ``vertex:`` section of a spec or config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    project: str | None = None
    location: str | None = None
    staging_bucket: str | None = Field(None, description="gs://bucket[/prefix] for staged code and outputs.")
    service_account: str | None = None


class VertexProvider(Provider):
    name: ClassVar[str] = "vertex"
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=True, multi_node=True, checkpoints=True, log_streaming=True, container_images=True,
        input_schemes=("local", "gs"), secret_sources=("gcp_secret",), sweep_jobs=True,
    )
    settings_model = VertexSettings
    region_setting = "location"
    native_variables = {"project": ("GOOGLE_CLOUD_PROJECT",)}
    machines_from_catalog = True
    settings_examples = SETTINGS_EXAMPLES
    settings_placeholders = {"project": "set-vertex-project", "staging_bucket": "gs://set-vertex-staging-bucket"}
    lookup_before_create = True  # Vertex assigns ids: the submission label finds an earlier create
    create_attempts = 4  # 1 + 2 + 4 s of backoff: an unreachable endpoint is reported within seconds

    def __init__(self, client: Any = None, storage_client: Any = None, credentials: Any = None,
                 environ: Mapping[str, str] | None = None, retry_seconds: float = 1.0, retry_deadline: float = 15.0,
                 poll_seconds: float = 2.0) -> None:
        """``client``: a ``JobServiceClient``; ``storage_client``: a ``google.cloud.storage.Client``;
        ``credentials``: google-auth credentials for both; ``environ``: where ``CLOUDTRAIN_VERTEX_API_ENDPOINT``
        and ``STORAGE_EMULATOR_HOST`` are read (default ``os.environ``); ``retry_seconds``: the first
        backoff of retried calls, doubling up to 30 s, for at most ``retry_deadline`` seconds."""
        self._clients: dict[str, Any] = {"": client} if client is not None else {}
        self._storage = storage_client
        self._log_readers: dict[str, Any] = {}
        self._credentials = credentials
        self._environ = environ
        self.retry_seconds, self.retry_deadline, self.poll_seconds = retry_seconds, retry_deadline, poll_seconds

    # -- clients: created here only -------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def credentials(self) -> Any:
        if self._credentials is None:
            if self.environ.get(ENDPOINT_VARIABLE):
                from google.auth.credentials import AnonymousCredentials

                self._credentials = AnonymousCredentials()
            else:
                import google.auth
                from google.auth.exceptions import DefaultCredentialsError

                try:
                    self._credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
                except DefaultCredentialsError:
                    raise ProviderError("no Google Cloud credentials were found (Application Default Credentials)", CREDENTIALS_HINT) from None
        return self._credentials

    def client(self, location: str | None) -> Any:
        if "" in self._clients:
            return self._clients[""]
        if not location:
            raise ProviderError("no Vertex AI location is set", "set vertex.location in the spec or config, or CLOUDTRAIN_VERTEX_LOCATION")
        if location not in self._clients:
            from google.api_core.client_options import ClientOptions
            from google.cloud import aiplatform_v1

            endpoint = self.environ.get(ENDPOINT_VARIABLE)
            if endpoint:
                options = ClientOptions(api_endpoint=endpoint if "://" in endpoint else f"http://{endpoint}")
                self._clients[location] = aiplatform_v1.JobServiceClient(credentials=self.credentials(), client_options=options, transport="rest")
            else:
                options = ClientOptions(api_endpoint=f"{location}-aiplatform.googleapis.com")
                self._clients[location] = aiplatform_v1.JobServiceClient(credentials=self.credentials(), client_options=options)
        return self._clients[location]

    def storage(self, project: str | None) -> Any:
        if self._storage is None:
            from google.cloud import storage

            host = self.environ.get("STORAGE_EMULATOR_HOST")
            if host:
                from google.auth.credentials import AnonymousCredentials

                self._storage = storage.Client(project=project or "emulator", credentials=AnonymousCredentials(),
                                               client_options={"api_endpoint": host if "://" in host else f"http://{host}"})
            else:
                self._storage = storage.Client(project=project, credentials=self.credentials())
        return self._storage

    def _retry(self, reads: bool = False) -> Any:
        """google-api-core's retry for throttling and 5xx; ``reads``: also a dropped connection
        (requests' ConnectionError, an OSError), safe to repeat for a get or a list, never for a create."""
        from google.api_core import exceptions, retry

        kinds: tuple[type[BaseException], ...] = (exceptions.TooManyRequests, exceptions.ServiceUnavailable,
                                                  exceptions.InternalServerError, exceptions.BadGateway,
                                                  exceptions.GatewayTimeout, exceptions.DeadlineExceeded)
        return retry.Retry(predicate=retry.if_exception_type(*kinds, *((OSError,) if reads else ())),
                           initial=self.retry_seconds, maximum=30.0, multiplier=2.0, timeout=self.retry_deadline)

    def translate_error(self, what: str, error: Exception) -> CloudtrainError:
        from google.api_core import exceptions
        from google.auth.exceptions import GoogleAuthError

        if isinstance(error, exceptions.RetryError) and isinstance(error.cause, OSError):
            return self.translate_error(what, error.cause)  # retried until the deadline: unreachable
        if isinstance(error, exceptions.RetryError):
            cause = error.cause
            detail = f"{type(cause).__name__}: {cause.message}" if isinstance(cause, exceptions.GoogleAPICallError) else str(cause or error)
            return ProviderError(f"Vertex AI kept failing while trying to {what}: {detail}",
                                 "retry later; if it persists, check quotas and the service status")
        if isinstance(error, exceptions.GoogleAPICallError):
            return ProviderError(f"Vertex AI refused to {what}: {type(error).__name__}: {error.message}", _hint_for(error))
        if isinstance(error, GoogleAuthError):
            return ProviderError(f"Google Cloud authentication failed while trying to {what}: {error}", CREDENTIALS_HINT)
        if isinstance(error, OSError):  # requests' ConnectionError is an OSError too
            return ProviderError(f"cannot reach Google Cloud while trying to {what}: {error}",
                                 f"check your network, {ENDPOINT_VARIABLE} / STORAGE_EMULATOR_HOST (emulator) and the location")
        return super().translate_error(what, error)

    # -- plan time -----------------------------------------------------------------------------------

    def check_settings(self, plan: "Plan") -> None:
        super().check_settings(plan)
        _job().staging(plan)
        from cloudtrain.providers.distribution import check_distribution

        check_distribution(plan, "vertex")

    def render(self, plan: "Plan") -> NativeRequest:
        request = _job().build_request(plan)
        _job().validate_request(request)
        return NativeRequest(cloud="vertex", payload=request)

    def render_sweep(self, plan: "Plan", sweep: Any) -> NativeRequest:
        from cloudtrain.sweeps.vertex import build_tuning_request, validate_tuning_request

        request = build_tuning_request(plan, sweep)
        validate_tuning_request(request)
        return NativeRequest(cloud="vertex", payload=request)

    # -- submission -----------------------------------------------------------------------------------

    def submit_sweep(self, plan: "Plan", request: NativeRequest) -> JobRef:
        return _tuning().submit(self, plan, request)

    def stage(self, plan: "Plan", request: NativeRequest) -> None:
        from cloudtrain.providers.bundle import make_bundle

        where = _job().staging(plan)
        bucket = self.storage(plan.settings["project"]).bucket(where["bucket"])
        if plan.spec.command_kind != "container":  # a prebuilt container's own entrypoint takes no code
            with make_bundle(Path(plan.spec.code), plan.spec.bundle, reuse=True) as bundle:  # streamed from a temporary file
                blob = bucket.blob(_job().split_gcs(where["code"])[1])
                blob.metadata = {"sha256": bundle.sha256}
                self._upload_file(blob, bundle.path, f"code -> {where['code']}", "upload the code bundle",
                                  content_type="application/gzip")  # same bytes each time: safe to retry
        for name, uri in where["inputs"].items():
            self._upload_input(bucket, Path(plan.spec.inputs[name].uri), uri)

    def _parent(self, plan: "Plan") -> tuple[Any, str]:
        location = plan.settings.get("location") or plan.region
        return self.client(location), f"projects/{plan.settings['project']}/locations/{location}"

    def create(self, plan: "Plan", request: NativeRequest) -> str:
        from google.cloud import aiplatform_v1

        client, parent = self._parent(plan)
        job = aiplatform_v1.CustomJob.from_json(request.to_text())
        return client.create_custom_job(parent=parent, custom_job=job, retry=None).name

    def classify_create_error(self, error: Exception) -> CreateOutcome:
        from google.api_core import exceptions

        transient = (exceptions.TooManyRequests, exceptions.ServiceUnavailable, exceptions.InternalServerError,
                     exceptions.BadGateway, exceptions.GatewayTimeout, exceptions.DeadlineExceeded,
                     OSError)  # requests' ConnectionError (a response lost after the create was accepted) is an OSError
        return CreateOutcome.TRANSIENT if isinstance(error, transient) else CreateOutcome.FATAL

    def find_submission(self, plan: "Plan") -> str | None:
        """The job of this location labelled with the submission token, or None."""
        client, parent = self._parent(plan)
        token = plan.submission_token
        pages = self.call("look for a job created by this submission", client.list_custom_jobs,
                          request={"parent": parent, "filter": f'labels.{_job().SUBMISSION_LABEL}="{token}"'}, retry=self._retry(reads=True))
        for job in self.call("list custom jobs", lambda: list(pages)):
            if job.labels.get(_job().SUBMISSION_LABEL) == token:
                return job.name
        return None

    def ref(self, plan: "Plan", native_id: str) -> JobRef:
        return JobRef(job_id=plan.job_name, cloud="vertex", native_id=native_id, region=plan.settings.get("location") or plan.region,
                      details={"submission_token": plan.submission_token, "project": plan.settings["project"],
                               "base_output": _job().staging(plan)["output"], "replicas": plan.nodes})

    def _upload_input(self, bucket: Any, path: Path, uri: str) -> None:
        from cloudtrain.progress import transfer

        prefix = _job().split_gcs(uri)[1]
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        with transfer(f"{path} -> {uri}", sum(file.stat().st_size for file in files)) as advance:
            for file in files:
                relative = file.name if path.is_file() else file.relative_to(path).as_posix()
                self._upload_file(bucket.blob(prefix + relative), file, None, f"upload input {file}", advance=advance)

    def _upload_file(self, blob: Any, path: Path, label: str | None, what: str, advance: Any = None, **options: Any) -> None:
        """One file to ``blob``, its bytes reported (to ``advance``, or a transfer named ``label``);
        google-cloud-storage's retry repeats it after throttling, a 5xx or a dropped connection (the
        same bytes to the same object: safe), backing off from ``retry_seconds``."""
        import mimetypes

        from google.api_core import exceptions
        from google.cloud.storage.retry import DEFAULT_RETRY

        from cloudtrain.progress import ReadCounter, transfer

        options.setdefault("content_type", mimetypes.guess_type(path.name)[0])  # as upload_from_filename does
        size = path.stat().st_size
        retry = DEFAULT_RETRY.with_timeout(self.retry_deadline).with_delay(initial=self.retry_seconds, maximum=30.0)

        def send(stream: Any) -> None:
            try:
                blob.upload_from_file(stream, size=size, rewind=False, retry=retry, timeout=(5, 120), **options)
            except exceptions.RetryError as error:  # gave up: on an HTTP answer (the library's raw one), or unreachable
                status = getattr(getattr(error.cause, "response", None), "status_code", None)
                if status is None:
                    raise
                raise ProviderError(f"Cloud Storage kept answering HTTP {status} while trying to {what} (retried for "
                                    f"{self.retry_deadline:g} s)", "retry later; if it persists, check the bucket's quotas") from None

        with transfer(label or what, size if advance is None else 0) as own, open(path, "rb") as handle:
            self.call(what, send, ReadCounter(handle, advance or own))

    # -- following ------------------------------------------------------------------------------------

    def describe(self, ref: JobRef) -> Any:
        client = self.client(ref.region or _location_of(ref.native_id))
        return self.call(f"get custom job {ref.native_id}", client.get_custom_job, name=ref.native_id, retry=self._retry(reads=True))

    def status(self, ref: JobRef) -> JobStatus:
        if is_sweep(ref):
            return _tuning().status(self, ref, neutral_state)
        job = self.describe(ref)
        native = job.state.name
        state = neutral_state(native)
        message = None
        if state in (JobState.FAILED, JobState.CANCELLED) and job.error.message:
            message = job.error.message
        elif native == "JOB_STATE_EXPIRED":
            message = "the job expired before it could run (no capacity within the wait limit)"
        model = None
        output = job.job_spec.base_output_directory.output_uri_prefix
        if state is JobState.SUCCEEDED and output:
            model = output.rstrip("/") + "/model/"
        return JobStatus(state=state, native_state=native, message=message, started_at=_time(job, "start_time"),
                         ended_at=_time(job, "end_time"), model_uri=model)

    def log_reader(self, project: str) -> Any:
        """The Cloud Logging reader of a project (the emulator's endpoint when one is set)."""
        from cloudtrain.providers.vertex_logs import CloudLoggingReader

        if project not in self._log_readers:
            self._log_readers[project] = CloudLoggingReader(project, credentials=self.credentials(),
                                                            endpoint=self.environ.get(ENDPOINT_VARIABLE) or None)
        return self._log_readers[project]

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        """The job's lines from Cloud Logging (``resource.type="ml_job"``, its job id)."""
        if is_sweep(ref):
            return _tuning().read_logs(self, ref, cursor, final)
        project = ref.details.get("project") or ref.native_id.split("/")[1]
        replicas = int(ref.details.get("replicas") or 1)
        return self.call("read the job's log entries", self.log_reader(project).read, ref.native_id, cursor,
                         prefix_tasks=replicas > 1)

    def cancel(self, ref: JobRef) -> None:
        if is_sweep(ref):
            return _tuning().cancel(self, ref)
        from google.api_core import exceptions

        client = self.client(ref.region or _location_of(ref.native_id))
        try:
            client.cancel_custom_job(name=ref.native_id, retry=self._retry(reads=True))  # cancelling twice is harmless
        except exceptions.FailedPrecondition:
            if not self.status(ref).state.is_terminal:
                raise ProviderError(f"Vertex AI cannot cancel {ref.native_id} now", "retry in a moment") from None
        except Exception as error:  # noqa: BLE001
            raise self.translate_error(f"cancel custom job {ref.native_id}", error) from None


def _location_of(name: str) -> str | None:
    parts = name.split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "locations" else None


def _hint_for(error: Any) -> str:
    from google.api_core import exceptions

    if isinstance(error, (exceptions.Unauthenticated, exceptions.PermissionDenied, exceptions.Forbidden, exceptions.Unauthorized)):
        return CREDENTIALS_HINT + "; the account needs the Vertex AI User role and access to the staging bucket"
    if isinstance(error, exceptions.TooManyRequests):
        return "a quota was exceeded: request more in IAM & Admin > Quotas, or choose another machine or location"
    if isinstance(error, (exceptions.InvalidArgument, exceptions.BadRequest)):
        return "check the request with `cloudtrain submit SPEC --cloud vertex --dry-run`"
    if isinstance(error, exceptions.NotFound):
        return "check vertex.project, vertex.location and vertex.staging_bucket (the bucket must exist)"
    return "see the message above; `cloudtrain submit --dry-run` shows the request that was sent"


def _time(job: Any, field: str) -> datetime | None:
    value = getattr(job, field, None)
    return value if isinstance(value, datetime) and value.timestamp() > 0 else None


def _job():  # type: ignore[no-untyped-def]
    """The request builder (imported when first used: estimates never need it)."""
    from cloudtrain.providers import vertex_job

    return vertex_job


def _tuning():  # type: ignore[no-untyped-def]
    """Hyperparameter tuning jobs (the sweeps: :mod:`cloudtrain.providers.vertex_tuning`)."""
    from cloudtrain.providers import vertex_tuning

    return vertex_tuning
