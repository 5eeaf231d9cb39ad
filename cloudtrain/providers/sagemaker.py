"""Amazon SageMaker training jobs, through boto3.

- ``render``: the exact ``CreateTrainingJob`` request (:mod:`cloudtrain.providers.sagemaker_request`),
  validated against the service model botocore ships, including enums, patterns and maximums.
- ``submit``: uploads the code bundle and local inputs to the staging bucket, then creates the job.
  The job name is unique per submission and is recorded in the store before the create call; a
  create that SageMaker already accepted (a retry after a dropped connection, or a resubmission of
  the same plan) answers "already exists" and is taken as the job this submission created.
- ``status``: TrainingJobStatus and SecondaryStatus mapped through :data:`STATES`.
- ``logs``: CloudWatch Logs, group ``/aws/sagemaker/TrainingJobs``, one stream per host.
- ``cancel``: StopTrainingJob.

Credentials and region come from the usual AWS chain (environment, profile, SSO, instance role);
``AWS_ENDPOINT_URL`` points every client at an emulator. Retries use botocore's own retry modes
(``standard`` by default; ``AWS_RETRY_MODE=adaptive`` and ``AWS_MAX_ATTEMPTS`` are honoured; 4
attempts by default) with a 5 s connect and a 30 s read timeout, so an unreachable endpoint is
reported within seconds, not minutes.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudtrain.errors import CloudtrainError, ProviderError, SpecError
from cloudtrain.providers.base import Capabilities, CreateOutcome, JobRef, JobState, JobStatus, NativeRequest, Provider, is_sweep

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: Staged objects are tagged so the staging bucket's lifecycle rule (infra/aws) can expire them.
STAGED_TAG = "cloudtrain-staged=bundle"
PENDING_SECONDARY = {"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack", "Downloading", "DownloadingTrainingImage"}
FAILED_SECONDARY = {"MaxRuntimeExceeded", "MaxWaitTimeExceeded"}
#: TrainingJobStatus -> neutral state (InProgress is refined by the secondary status).
STATES = {
    "InProgress": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopping": JobState.CANCELLING,
    "Stopped": JobState.CANCELLED,
}
CREDENTIALS_HINT = ("configure AWS credentials: `aws configure` or `aws sso login`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY; to use the local emulator, run `cloudtrain emulator start --cloud sagemaker` and export what it prints")


def neutral_state(status: str, secondary: str | None) -> JobState:
    if status == "InProgress" and secondary in PENDING_SECONDARY:
        return JobState.PENDING
    if status == "Stopped" and secondary in FAILED_SECONDARY:
        return JobState.FAILED
    return STATES.get(status, JobState.PENDING)


class SageMakerSettings(BaseModel):
    """The ``sagemaker:`` section of a spec or config file."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    region: str | None = None
    role_arn: str | None = Field(None, description="IAM role SageMaker assumes to run the job.")
    bucket: str | None = Field(None, description="S3 bucket for staged code, inputs and outputs.")
    prefix: str = Field("cloudtrain", description="Key prefix inside the bucket.")


class SageMakerProvider(Provider):
    name: ClassVar[str] = "sagemaker"
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=True, multi_node=True, checkpoints=True, log_streaming=True, container_images=True,
        input_schemes=("local", "s3"), secret_sources=("aws_secret",), sweep_jobs=True,
    )
    settings_model = SageMakerSettings
    region_setting = "region"
    native_variables = {"region": ("AWS_REGION", "AWS_DEFAULT_REGION")}
    machines_from_catalog = True
    settings_examples = {"role_arn": "arn:aws:iam::123456789012:role/SageMakerTraining", "bucket": "my-training-bucket"}
    settings_placeholders = {"role_arn": "arn:aws:iam::000000000000:role/SET-sagemaker.role_arn", "bucket": "set-sagemaker.bucket"}
    create_attempts = 1  # botocore retries the call itself; what is left is uncertain or refused

    def __init__(self, client: Any = None) -> None:
        """``client``: a ``boto3.Session`` to create the service clients with (tests and emulators hand
        one in); else the default credential chain."""
        self._session = client
        self._clients: dict[tuple[str, str | None], Any] = {}

    # -- clients: created here only -------------------------------------------------------------

    def client(self, service: str, region: str | None) -> Any:
        key = (service, region)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            from botocore.exceptions import BotoCoreError

            try:
                session = self._session or boto3.Session()
                credentials = session.get_credentials()
                attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", 4))
            except BotoCoreError as error:
                raise ProviderError(f"the AWS configuration cannot be used: {error}", CREDENTIALS_HINT) from None
            except ValueError:
                raise ProviderError("AWS_MAX_ATTEMPTS is not a whole number", "unset it or set it to e.g. 4") from None
            if credentials is None:
                raise ProviderError("no AWS credentials were found", CREDENTIALS_HINT)
            region = region or session.region_name
            if not region:
                raise ProviderError("no AWS region is set", "set sagemaker.region in the spec or config, or AWS_DEFAULT_REGION")
            config = Config(
                retries={"mode": os.environ.get("AWS_RETRY_MODE", "standard"), "max_attempts": attempts},
                connect_timeout=5, read_timeout=30, user_agent_extra="cloudtrain",
            )
            self._clients[key] = session.client(service, region_name=region, config=config)
        return self._clients[key]

    def translate_error(self, what: str, error: Exception) -> CloudtrainError:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(error, NoCredentialsError):
            return ProviderError("no AWS credentials were found", CREDENTIALS_HINT)
        if isinstance(error, EndpointConnectionError):
            return ProviderError(f"cannot reach AWS while trying to {what}: {error}",
                                 "check your network, AWS_ENDPOINT_URL (emulator) and region")
        if isinstance(error, ClientError):
            info = error.response.get("Error", {})
            return ProviderError(f"SageMaker refused to {what}: {info.get('Code')}: {info.get('Message')}",
                                 _hint_for(info.get("Code", "")))
        if isinstance(error, BotoCoreError):
            return ProviderError(f"the AWS SDK failed to {what}: {error}", "retry; if it persists, check the AWS configuration")
        from boto3.exceptions import S3UploadFailedError

        if isinstance(error, S3UploadFailedError):
            bucket_hint = ("check that sagemaker.bucket exists and the credentials may write to it"
                           if "NoSuchBucket" in str(error) or "AccessDenied" in str(error) else "retry; check the network")
            return ProviderError(f"S3 refused to {what}: {str(error).split(': ', 1)[-1][:400]}", bucket_hint)
        return super().translate_error(what, error)

    # -- plan time -----------------------------------------------------------------------------------

    def check_settings(self, plan: "Plan") -> None:
        super().check_settings(plan)
        from cloudtrain.providers.sagemaker_request import staging

        staging(plan)  # output and checkpoint locations must be S3
        from cloudtrain.providers.distribution import check_distribution

        check_distribution(plan, "sagemaker")
        if plan.spec.checkpoint.dir and not plan.spec.checkpoint.dir.startswith("/"):
            raise SpecError("checkpoint.dir: on SageMaker it is an absolute path inside the job", "e.g. /opt/ml/checkpoints")

    def render(self, plan: "Plan") -> NativeRequest:
        from cloudtrain.providers.sagemaker_request import build_request, validate_request

        request = build_request(plan)
        validate_request(request)
        return NativeRequest(cloud="sagemaker", payload=request)

    def render_sweep(self, plan: "Plan", sweep: Any) -> NativeRequest:
        from cloudtrain.sweeps.sagemaker import build_tuning_request, validate_tuning_request

        request = build_tuning_request(plan, sweep)
        validate_tuning_request(request)
        return NativeRequest(cloud="sagemaker", payload=request)

    def sweep_name(self, plan: "Plan") -> str:
        from cloudtrain.sweeps.sagemaker import tuning_job_name

        return tuning_job_name(plan)

    # -- submission -----------------------------------------------------------------------------------

    def submit_sweep(self, plan: "Plan", request: NativeRequest) -> JobRef:
        from cloudtrain.providers import sagemaker_tuning

        return sagemaker_tuning.submit(self, plan, request)

    def stage(self, plan: "Plan", request: NativeRequest) -> None:
        from cloudtrain.progress import transfer
        from cloudtrain.providers.bundle import make_bundle

        s3 = self.client("s3", plan.region)
        from cloudtrain.providers.sagemaker_request import staging

        where = staging(plan)
        bucket, key = _split_s3(where["code"])
        if plan.spec.command_kind != "container":  # a built-in algorithm takes no code
            with make_bundle(Path(plan.spec.code), plan.spec.bundle, reuse=True) as bundle, \
                    transfer(f"code -> {where['code']}", bundle.path.stat().st_size) as advance:  # streamed from a temporary file
                self.call("upload the code bundle", s3.upload_file, Filename=str(bundle.path), Bucket=bucket, Key=key,
                          ExtraArgs={"Metadata": {"sha256": bundle.sha256}, "Tagging": STAGED_TAG}, Callback=advance)
        for name, uri in where["inputs"].items():
            self._upload_input(s3, Path(plan.spec.inputs[name].uri), uri)

    def create(self, plan: "Plan", request: NativeRequest) -> str:
        self.client("sagemaker", plan.region).create_training_job(**request.payload)
        return plan.job_name

    def classify_create_error(self, error: Exception) -> CreateOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError) and _already_exists(error.response.get("Error", {})):
            return CreateOutcome.ALREADY_EXISTS
        if isinstance(error, BotoCoreError):  # retries exhausted on a dropped or timed-out connection
            return CreateOutcome.UNCERTAIN
        return CreateOutcome.FATAL

    def find_submission(self, plan: "Plan") -> str | None:
        """Job names are unique per submission: a job of that name is this submission's."""
        return plan.job_name

    def _upload_input(self, s3: Any, path: Path, uri: str) -> None:
        from cloudtrain.progress import transfer

        bucket, prefix = _split_s3(uri)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        with transfer(f"{path} -> {uri}", sum(file.stat().st_size for file in files)) as advance:
            for file in files:
                relative = file.name if path.is_file() else file.relative_to(path).as_posix()
                self.call(f"upload input {file}", s3.upload_file, Filename=str(file), Bucket=bucket, Key=prefix + relative,
                          ExtraArgs={"Tagging": STAGED_TAG}, Callback=advance)

    # -- following ------------------------------------------------------------------------------------

    def describe(self, ref: JobRef) -> dict[str, Any]:
        sagemaker = self.client("sagemaker", ref.region)
        return self.call(f"describe job {ref.native_id}", sagemaker.describe_training_job, TrainingJobName=ref.native_id)

    def status(self, ref: JobRef) -> JobStatus:
        if is_sweep(ref):
            from cloudtrain.providers import sagemaker_tuning

            return sagemaker_tuning.status(self, ref)
        job = self.describe(ref)
        status, secondary = job["TrainingJobStatus"], job.get("SecondaryStatus")
        state = neutral_state(status, secondary)
        message = job.get("FailureReason") if state is JobState.FAILED else None
        if state is JobState.FAILED and secondary in FAILED_SECONDARY and not message:
            message = f"{secondary}: the job ran past its limit (max_runtime / spot.max_wait)"
        if message is None and secondary and secondary != status:
            message = secondary
        model = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts") if state is JobState.SUCCEEDED else None
        return JobStatus(state=state, native_state=f"{status}/{secondary}" if secondary else status, message=message,
                         started_at=_time(job.get("TrainingStartTime")), ended_at=_time(job.get("TrainingEndTime")),
                         model_uri=model)

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        if is_sweep(ref):
            from cloudtrain.providers import sagemaker_tuning

            return sagemaker_tuning.read_logs(self, ref, cursor, final)
        return self.read_trial_logs(ref, cursor, final)

    def read_trial_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        """CloudWatch events of every host's stream after the per-stream tokens in ``cursor``."""
        from botocore.exceptions import ClientError

        logs = self.client("logs", ref.region)
        tokens: dict[str, str | None] = dict(cursor or {})
        try:
            pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=LOG_GROUP,
                                                                         logStreamNamePrefix=ref.native_id + "/")
            streams = [s for page in pages for s in page["logStreams"]]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise self.translate_error("list log streams", error) from None
            streams = []  # no log group yet: the job has not started writing
        except Exception as error:  # noqa: BLE001
            raise self.translate_error("list log streams", error) from None
        names = sorted(s["logStreamName"] for s in streams)
        events = []
        for stream in names:
            while True:
                kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                if tokens.get(stream):
                    kwargs["nextToken"] = tokens[stream]
                page = self.call("read log events", logs.get_log_events, **kwargs)
                for event in page["events"]:
                    host = stream.split("/", 1)[-1].rsplit("-", 1)[0]
                    events.append((event["timestamp"], stream, f"[{host}] " if len(names) > 1 else "", event["message"]))
                next_token = page.get("nextForwardToken")
                done = not page["events"] or next_token == tokens.get(stream)
                tokens[stream] = next_token
                if done:
                    break
        lines = [prefix + message.rstrip("\n") for _, _, prefix, message in sorted(events, key=lambda e: (e[0], e[1]))]
        return lines, tokens

    def cancel(self, ref: JobRef) -> None:
        if is_sweep(ref):
            from cloudtrain.providers import sagemaker_tuning

            return sagemaker_tuning.cancel(self, ref)
        sagemaker = self.client("sagemaker", ref.region)
        self.call(f"stop job {ref.native_id}", sagemaker.stop_training_job, TrainingJobName=ref.native_id)


def _already_exists(info: dict[str, Any]) -> bool:
    return info.get("Code") in ("ResourceInUse", "ValidationException") and "already exist" in str(info.get("Message", "")).lower()


def _hint_for(code: str) -> str:
    if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"):
        return CREDENTIALS_HINT
    if code == "ResourceLimitExceeded":
        return "request a quota increase for this instance type in Service Quotas, or choose another instance type or region"
    if code == "ValidationException":
        return "check the request with `cloudtrain submit SPEC --cloud sagemaker --dry-run`"
    return "see the message above; `cloudtrain submit --dry-run` shows the request that was sent"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
