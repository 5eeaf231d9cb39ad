"""Azure Machine Learning command jobs, through the ``azure-ai-ml`` SDK (v2) and ``azure-identity``.

- ``render``: the job YAML of the Azure ML CLI v2 schema (:mod:`cloudtrain.providers.azureml_job`),
  checked against the SDK's command job schema exported as JSON Schema, without importing the SDK
  (about a second); errors name the field.
- ``submit``: loads that YAML with the SDK (``load_job``, its schema, and the entity validation
  ``MLClient.jobs.validate`` runs), with ``code`` pointing at a staged copy of the code bundle (the spec's
  code directory plus ``cloudtrain/runtime``) and calls ``MLClient.jobs.create_or_update``, which
  uploads the code and local inputs and creates the job. Job names are unique in a workspace: a
  submission first looks the job up by name and takes the one it finds (when its
  ``cloudtrain:submission`` tag is this plan's token), and a create answered "already exists" is
  taken the same way, so a retry never makes a second job. Transient failures (throttling, 5xx, a
  dropped connection) that outlast the SDK's own retries make the whole, idempotent, submission
  start again, a few times.
- ``status``: the job's status mapped through :data:`STATES`; the failure reason, the run's
  warnings (a preempted low priority node...) and times come from the run's details in run history.
- ``logs``: the run's ``user_logs/std_log*.txt`` files, listed by run history and read from their
  (SAS) URLs, as ``az ml job stream`` does; with several processes each line is prefixed with its
  file's process.
- ``cancel``: ``MLClient.jobs.begin_cancel`` (Azure ML answers at once and cancels in the background).
- sweeps: a sweep job, created, followed and cancelled the same way (:mod:`cloudtrain.providers.azureml_sweep`).

The workspace comes from the ``azureml`` settings (spec, config file, or ``CLOUDTRAIN_AZUREML_*``);
credentials from ``DefaultAzureCredential`` (environment, workload or managed identity, Azure CLI
login...), or a credential / ``MLClient`` handed in. ``AZUREML_DEV_URL_MFE`` (with
``REQUESTS_CA_BUNDLE``) points the SDK at an emulator. Secrets are read inside the job from Azure Key
Vault by the entry shim, with the compute's identity; other secret stores are refused at plan time.
"""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from pydantic import BaseModel, ConfigDict, Field

from cloudtrain.errors import CloudtrainError, ProviderError, UnsupportedFeatureError
from cloudtrain.providers.azureml_errors import not_sent, provider_error, transient
from cloudtrain.providers.base import (Capabilities, CreateOutcome, JobRef, JobState, JobStatus, NativeRequest, Provider, is_sweep,
                                       missing_settings_error)

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

#: Azure ML job status -> neutral state.
STATES = {
    "NotStarted": JobState.PENDING,
    "Queued": JobState.PENDING,
    "Preparing": JobState.PENDING,
    "Provisioning": JobState.PENDING,
    "Starting": JobState.PENDING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "Paused": JobState.RUNNING,
    "NotResponding": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "CancelRequested": JobState.CANCELLING,
    "Canceled": JobState.CANCELLED,
}
USER_LOG_PREFIX = "user_logs/std_log"
WORKSPACE_KEYS = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "my-resource-group",
                  "workspace": "my-workspace"}


def neutral_state(status: str) -> JobState:
    return STATES.get(status, JobState.PENDING)


def default_output_uri(job_name: str, output: str) -> str:
    return f"azureml://datastores/workspaceblobstore/paths/azureml/{job_name}/{output}/"


class AzureMLSettings(BaseModel):
    """The ``azureml:`` section of a spec or config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    subscription_id: str | None = None
    region: str | None = Field(None, description="The workspace's Azure region (e.g. eastus), used for pricing.")
    resource_group: str | None = None
    workspace: str | None = None
    compute: str | None = Field(None, description="Compute cluster name; serverless when unset.")
    experiment: str | None = None


#: azure-core's own transport and retry settings for every ``MLClient`` call (its defaults retry 10
#: times with backoff up to 2 minutes, and wait 5 minutes for a read): an unreachable workspace is
#: reported within seconds, a slow answer within a minute. cloudtrain's own create retry
#: (:meth:`Provider.create_once`) comes on top, with the same job name.
CLIENT_TIMEOUTS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 3,
                                   "retry_backoff_factor": 0.5, "retry_backoff_max": 4}


class AzureMLProvider(Provider):
    name: ClassVar[str] = "azureml"
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=True, multi_node=True, checkpoints=True, log_streaming=True, container_images=True,
        input_schemes=("local", "azureml", "https", "wasbs", "abfss"), secret_sources=("azure_key_vault",), sweep_jobs=True,
    )
    settings_model = AzureMLSettings
    region_setting = "region"
    native_variables = {"subscription_id": ("AZURE_SUBSCRIPTION_ID",)}
    machines_from_catalog = True
    settings_examples = WORKSPACE_KEYS
    settings_placeholders = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "SET-azureml.resource_group",
                             "workspace": "SET-azureml.workspace"}
    lookup_before_create = True  # job names are the workspace's keys: look before each attempt

    def __init__(self, client: Any = None, credential: Any = None) -> None:
        """``client``: an ``MLClient`` used for every job (tests and emulators hand one in);
        ``credential``: a token credential to build clients with; else ``DefaultAzureCredential``."""
        self._client = client
        self._credential = credential
        self._clients: dict[tuple[str, str, str], Any] = {}

    # -- clients: created here only -------------------------------------------------------------

    def client(self, where: dict[str, Any]) -> Any:
        if self._client is not None:
            return self._client
        missing = [key for key in WORKSPACE_KEYS if not where.get(key)]
        if missing:
            raise missing_settings_error(self.name, missing, WORKSPACE_KEYS)
        key = (where["subscription_id"], where["resource_group"], where["workspace"])
        if key not in self._clients:
            _quiet_sdk_logging()
            from azure.ai.ml import MLClient

            credential = self._credential
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            self._clients[key] = MLClient(credential, *key, show_progress=False, user_agent="cloudtrain", **CLIENT_TIMEOUTS)
        return self._clients[key]

    def translate_error(self, what: str, error: Exception) -> CloudtrainError:
        return provider_error(what, error)

    # -- plan time -----------------------------------------------------------------------------------

    def check_settings(self, plan: "Plan") -> None:
        super().check_settings(plan)
        if plan.spec.command_kind == "container":
            raise UnsupportedFeatureError("entrypoint: an Azure ML command job runs a command, not an image's own entrypoint",
                                          "give command: (e.g. command: 'python train.py') or entrypoint:")
        for name, item in plan.spec.inputs.items():
            if item.mode in ("File", "FastFile", "Pipe") or item.distribution:
                raise UnsupportedFeatureError(f"inputs.{name}: mode {item.mode or ''} / distribution are SageMaker's",
                                              "on Azure ML, mode is download or mount")
        if plan.nodes > 1 and plan.spec.distribution.type == "none":
            raise UnsupportedFeatureError("resources.nodes: several Azure ML nodes need distribution.type: torchrun, mpi, tensorflow "
                                          "or deepspeed (otherwise every node runs the whole job)", "set distribution: {type: torchrun} or resources.nodes: 1")
        from cloudtrain.providers.distribution import check_distribution

        check_distribution(plan, "azureml")
        for name, output in plan.spec.outputs.items():
            if output.uri and not output.uri.startswith(_job().URI_SCHEMES):
                raise UnsupportedFeatureError(f"outputs.{name}: {output.uri} is not a location Azure ML can write",
                                              "give an azureml://, https://, wasbs:// or abfss:// URI, or leave it unset for the job's default location")
        checkpoint = plan.spec.checkpoint.uri
        if checkpoint and not checkpoint.startswith(_job().URI_SCHEMES):
            raise UnsupportedFeatureError(f"checkpoint.uri: {checkpoint} is not a location Azure ML can write",
                                          "give an azureml://, https://, wasbs:// or abfss:// URI")

    def render(self, plan: "Plan") -> NativeRequest:
        """The job YAML, checked against the SDK's command job schema without importing the SDK;
        ``create`` loads it with the SDK itself."""
        document = _job().job_document(plan)
        _job().validate_document(document)
        return NativeRequest(cloud="azureml", payload=document, format="yaml")

    def render_sweep(self, plan: "Plan", sweep: Any) -> NativeRequest:
        """The sweep job as the YAML ``az ml job create`` takes, checked against the SDK's sweep job
        schema without importing the SDK; ``create`` loads it with the SDK itself."""
        from cloudtrain.sweeps.azureml import sweep_document

        document = sweep_document(plan, sweep)
        _job().validate_document(document, kind="sweep")
        return NativeRequest(cloud="azureml", payload=document, format="yaml")

    def submit_sweep(self, plan: "Plan", request: NativeRequest) -> JobRef:
        """Create the sweep job once, as a command job is (:mod:`cloudtrain.providers.azureml_sweep`)."""
        from cloudtrain.providers import azureml_sweep

        return azureml_sweep.submit(self, plan, request)

    # -- submission -----------------------------------------------------------------------------------

    def create(self, plan: "Plan", request: NativeRequest) -> str:
        """Stage the code bundle and create the job; the SDK uploads the code and local inputs."""
        ml = self.client(_job().workspace(plan))
        with staged_code(Path(plan.spec.code), plan.spec.bundle) as code_dir:
            from cloudtrain.providers.azureml_job import load_yaml_job
            from cloudtrain.sweeps.azureml import sweep_job_for_submit

            if request.payload.get("type") == "sweep":  # a sweep job: its trial's code is the bundle
                job = sweep_job_for_submit(request.payload, code_dir)
            else:
                job = load_yaml_job(request.payload, overrides=[{"code": str(code_dir)}])
            with contextlib.redirect_stderr(io.StringIO()):  # the SDK prints a colour reset after uploads
                ml.jobs.create_or_update(job)
        return plan.job_name

    def classify_create_error(self, error: Exception) -> CreateOutcome:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        if isinstance(error, ResourceExistsError) or (isinstance(error, HttpResponseError) and "already exist" in str(error).lower()):
            return CreateOutcome.ALREADY_EXISTS
        if not_sent(error):
            return CreateOutcome.NOT_SENT
        return CreateOutcome.TRANSIENT if transient(error) else CreateOutcome.FATAL

    def find_submission(self, plan: "Plan") -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        ml = self.client(_job().workspace(plan))
        try:
            job = ml.jobs.get(plan.job_name)
        except ResourceNotFoundError:
            return None
        except Exception as error:  # noqa: BLE001
            if transient(error):
                return None  # the create attempt that follows meets the same trouble and is retried
            raise self.translate_error(f"look up job {plan.job_name}", error) from None
        token = (job.tags or {}).get("cloudtrain:submission")
        if token != plan.submission_token:
            raise ProviderError(f"another job named {plan.job_name} already exists in the workspace (submission {token})",
                                "submit again: a new submission gets a new job name")
        return plan.job_name

    def ref(self, plan: "Plan", native_id: str) -> JobRef:
        return JobRef(job_id=plan.job_name, cloud="azureml", native_id=native_id, region=plan.region,
                      details={"submission_token": plan.submission_token, **_job().workspace(plan)})

    # -- following ------------------------------------------------------------------------------------

    def _ml(self, ref: JobRef) -> Any:
        return self.client({key: ref.details.get(key) for key in WORKSPACE_KEYS})

    def run_details(self, ref: JobRef) -> Any:
        """The run's details in run history (status, error, times, log file URLs)."""
        ml = self._ml(ref)
        return self.call(f"read the run details of job {ref.native_id}", ml.jobs._runs_operations.get_run_details, ref.native_id)

    def status(self, ref: JobRef) -> JobStatus:
        if is_sweep(ref):
            from cloudtrain.providers import azureml_sweep

            return azureml_sweep.status(self, ref, neutral_state, default_output_uri, _time)
        ml = self._ml(ref)
        job = self.call(f"get job {ref.native_id}", ml.jobs.get, ref.native_id)
        native = str(getattr(job.status, "value", job.status) or "NotStarted")
        state = neutral_state(native)
        message, started, ended, model = None, None, None, None
        if state.is_terminal:
            details = self.run_details(ref)
            started, ended = _time(details.start_time_utc), _time(details.end_time_utc)
            if state is JobState.FAILED:
                error = getattr(details.error, "error", None)
                message = getattr(error, "message", None) or "the job failed; see `cloudtrain logs`"
            warnings = [w.message for w in (getattr(details, "warnings", None) or []) if getattr(w, "message", None)]
            if warnings:  # e.g. a low priority node preempted and the job restarted
                message = "; ".join([*([message] if message else []), *warnings])
        if state is JobState.SUCCEEDED:
            output = (job.outputs or {}).get("model")
            model = getattr(output, "path", None) or default_output_uri(ref.native_id, "model")
        return JobStatus(state=state, native_state=native, message=message, started_at=started, ended_at=ended, model_uri=model)

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        """The run's ``user_logs/std_log*.txt`` files after the characters already read of each."""
        if is_sweep(ref):
            from cloudtrain.providers import azureml_sweep

            return azureml_sweep.read_logs(self, ref, cursor, final)
        from azure.ai.ml._utils.utils import download_text_from_url

        ml = self._ml(ref)
        read: dict[str, int] = dict(cursor or {})
        files = {name: url for name, url in (self.run_details(ref).log_files or {}).items()
                 if name.startswith(USER_LOG_PREFIX) and name.endswith(".txt")}
        lines: list[str] = []
        for name in sorted(files):
            text = self.call(f"read log file {name}", download_text_from_url, files[name], ml.jobs._requests_pipeline, timeout=60)
            text = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
            start = read.get(name, 0)
            end = len(text) if final else text.rfind("\n", start) + 1
            if end <= start:
                continue
            read[name] = end
            prefix = f"[{name[len(USER_LOG_PREFIX):-4].strip('_')}] " if len(files) > 1 else ""
            lines += [prefix + line for line in text[start:end].splitlines()]
        return lines, read

    def cancel(self, ref: JobRef) -> None:
        ml = self._ml(ref)
        self.call(f"cancel job {ref.native_id}", ml.jobs.begin_cancel, ref.native_id)


@contextlib.contextmanager
def staged_code(code_dir: Path, settings: Any = None) -> Iterator[Path]:
    """A temporary directory holding the code bundle's files (the spec's code plus cloudtrain/runtime),
    chosen by the same walk as the other clouds' archives (:func:`cloudtrain.providers.bundle.select_code`:
    no credentials, ignored files or links outside the code) and capped by ``bundle.max_mib`` of
    ``settings`` (the spec's :class:`cloudtrain.spec.Bundle`; None: the defaults)."""
    import os
    import shutil
    import tempfile

    from cloudtrain.providers.bundle import check_size, select_code

    selection = select_code(code_dir, settings, reuse=True)
    check_size(selection, settings.max_mib if settings else 512)
    root = Path(tempfile.mkdtemp(prefix="cloudtrain-azureml-"))
    try:
        target = root / "code"
        for name, path in selection.files.items():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)  # a link's target's content, as in the other clouds' archives
            if os.access(path, os.X_OK):
                destination.chmod(0o755)
        yield target
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _quiet_sdk_logging() -> None:
    """The SDK prints preview notices (WARNING, at import) and progress (INFO, on loggers it gives
    their own stderr handler); keep them out of cloudtrain's output unless the user set those levels."""
    import logging

    noisy = ["azure.ai.ml._utils._experimental", "azure.identity", "azure.core.pipeline.policies.http_logging_policy"]
    for name in noisy:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
    import azure.ai.ml  # noqa: F401  (its loggers exist once it is imported)

    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("azure.ai.ml") and isinstance(logger, logging.Logger) and logger.level == logging.INFO:
            logger.setLevel(logging.WARNING)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _job():  # type: ignore[no-untyped-def]
    """The job builder (imported when first used: estimates never need it)."""
    from cloudtrain.providers import azureml_job

    return azureml_job
