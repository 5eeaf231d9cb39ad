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
(``standard`` by default; ``AWS_RETRY_MODE=adaptive`` and ``AWS_MAX_ATTEMPTS`` are honoured).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from cloudtrain.errors import ProviderError, SpecError, SubmissionUncertainError
from cloudtrain.providers.base import Capabilities, JobRef, JobState, JobStatus, NativeRequest, check_capabilities
from cloudtrain.providers.sagemaker_request import build_request, staging, validate_request

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
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


class SageMakerProvider:
    name: ClassVar[str] = "sagemaker"
    capabilities: ClassVar[Capabilities] = Capabilities(
        spot=True, multi_node=True, checkpoints=True, log_streaming=True, sweeps=True, container_images=True,
        input_schemes=("local", "s3"), secret_sources=("aws_secret",),
    )

    def __init__(self, session: Any = None) -> None:
        """``session``: a ``boto3.Session`` to use (tests and emulators hand one in); else the default chain."""
        self._session = session
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
                attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", 8))
            except BotoCoreError as error:
                raise ProviderError(f"the AWS configuration cannot be used: {error}", CREDENTIALS_HINT) from None
            except ValueError:
                raise ProviderError("AWS_MAX_ATTEMPTS is not a whole number", "unset it or set it to e.g. 8") from None
            if credentials is None:
                raise ProviderError("no AWS credentials were found", CREDENTIALS_HINT)
            region = region or session.region_name
            if not region:
                raise ProviderError("no AWS region is set", "set sagemaker.region in the spec or config, or AWS_DEFAULT_REGION")
            config = Config(
                retries={"mode": os.environ.get("AWS_RETRY_MODE", "standard"), "max_attempts": attempts},
                connect_timeout=10, read_timeout=60, user_agent_extra="cloudtrain",
            )
            self._clients[key] = session.client(service, region_name=region, config=config)
        return self._clients[key]

    def _call(self, what: str, func: Any, **kwargs: Any) -> Any:
        """One SDK call with the SDK's retries; failures become one clear ProviderError."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

        try:
            return func(**kwargs)
        except NoCredentialsError:
            raise ProviderError("no AWS credentials were found", CREDENTIALS_HINT) from None
        except EndpointConnectionError as error:
            raise ProviderError(f"cannot reach AWS while trying to {what}: {error}",
                                "check your network, AWS_ENDPOINT_URL (emulator) and region") from None
        except ClientError as error:
            info = error.response.get("Error", {})
            raise ProviderError(f"SageMaker refused to {what}: {info.get('Code')}: {info.get('Message')}",
                                _hint_for(info.get("Code", ""))) from None
        except BotoCoreError as error:
            raise ProviderError(f"the AWS SDK failed to {what}: {error}", "retry; if it persists, check the AWS configuration") from None

    # -- plan time -----------------------------------------------------------------------------------

    def check(self, plan: "Plan") -> None:
        check_capabilities(self, plan)
        for key, example in (("role_arn", "arn:aws:iam::123456789012:role/SageMakerTraining"), ("bucket", "my-training-bucket")):
            if not plan.settings.get(key):
                raise SpecError(f"sagemaker.{key} is not set", f"set it in the spec, in cloudtrain.yaml (sagemaker: {{{key}: {example}}}), "
                                f"or with CLOUDTRAIN_SAGEMAKER_{key.upper()}")
        if plan.spec.checkpoint.dir and not plan.spec.checkpoint.dir.startswith("/"):
            raise SpecError("checkpoint.dir: on SageMaker it is an absolute path inside the job", "e.g. /opt/ml/checkpoints")

    def render(self, plan: "Plan") -> NativeRequest:
        request = build_request(plan)
        validate_request(request)
        return NativeRequest(cloud="sagemaker", payload=request)

    # -- submission -----------------------------------------------------------------------------------

    def submit(self, plan: "Plan", request: NativeRequest) -> JobRef:
        from cloudtrain.providers.bundle import make_bundle

        payload = request.payload
        s3 = self.client("s3", plan.region)
        where = staging(plan)
        bucket, key = _split_s3(where["code"])
        bundle = make_bundle(Path(plan.spec.code))
        self._call("upload the code bundle", s3.put_object, Bucket=bucket, Key=key, Body=bundle.data,
                   Metadata={"sha256": bundle.sha256})
        for name, uri in where["inputs"].items():
            self._upload_input(s3, Path(plan.spec.inputs[name].uri), uri)
        sagemaker = self.client("sagemaker", plan.region)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            sagemaker.create_training_job(**payload)
        except BotoCoreError as error:  # retries exhausted on a dropped or timed-out connection
            raise SubmissionUncertainError(
                f"no answer from SageMaker to the create request of {plan.job_name} ({error}); it may have been accepted",
                f"`cloudtrain status {plan.job_name}` asks SageMaker whether the job exists; "
                f"`cloudtrain submit SPEC --resume {plan.job_name}` sends it again (it is never created twice)",
            ) from None
        except ClientError as error:
            info = error.response.get("Error", {})
            if not _already_exists(info):
                self._call("create the training job", _raise, error=error)
            # accepted before (a retry after a lost response, or a resubmitted plan): same job
        return self.ref(plan)

    def ref(self, plan: "Plan") -> JobRef:
        return JobRef(job_id=plan.job_name, cloud="sagemaker", native_id=plan.job_name, region=plan.region,
                      details={"submission_token": plan.submission_token})

    def _upload_input(self, s3: Any, path: Path, uri: str) -> None:
        bucket, prefix = _split_s3(uri)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            relative = file.name if path.is_file() else file.relative_to(path).as_posix()
            self._call(f"upload input {file}", s3.upload_file, Filename=str(file), Bucket=bucket, Key=prefix + relative)

    # -- following ------------------------------------------------------------------------------------

    def describe(self, ref: JobRef) -> dict[str, Any]:
        sagemaker = self.client("sagemaker", ref.region)
        return self._call(f"describe job {ref.native_id}", sagemaker.describe_training_job, TrainingJobName=ref.native_id)

    def status(self, ref: JobRef) -> JobStatus:
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

    def logs(self, ref: JobRef, follow: bool = False) -> Iterator[str]:
        logs = self.client("logs", ref.region)
        tokens: dict[str, str | None] = {}
        from botocore.exceptions import ClientError

        while True:
            terminal = self.status(ref).state.is_terminal  # read before the logs: no line is missed
            try:
                pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=LOG_GROUP,
                                                                             logStreamNamePrefix=ref.native_id + "/")
                streams = self._call("list log streams", lambda: [s for page in pages for s in page["logStreams"]])
            except ProviderError as error:
                if "ResourceNotFoundException" not in error.message:
                    raise
                streams = []  # no log group yet: the job has not started writing
            names = sorted(s["logStreamName"] for s in streams)
            events = []
            for stream in names:
                while True:
                    kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                    if tokens.get(stream):
                        kwargs["nextToken"] = tokens[stream]
                    try:
                        page = logs.get_log_events(**kwargs)
                    except ClientError as error:
                        self._call("read log events", _raise, error=error)
                    for event in page["events"]:
                        host = stream.split("/", 1)[-1].rsplit("-", 1)[0]
                        events.append((event["timestamp"], stream, f"[{host}] " if len(names) > 1 else "", event["message"]))
                    next_token = page.get("nextForwardToken")
                    if not page["events"] or next_token == tokens.get(stream):
                        tokens[stream] = next_token
                        break
                    tokens[stream] = next_token
            for _, _, prefix, message in sorted(events, key=lambda e: (e[0], e[1])):
                yield prefix + message.rstrip("\n")
            if not follow or terminal:
                return
            time.sleep(2.0)

    def cancel(self, ref: JobRef) -> None:
        sagemaker = self.client("sagemaker", ref.region)
        self._call(f"stop job {ref.native_id}", sagemaker.stop_training_job, TrainingJobName=ref.native_id)


def _raise(error: Exception) -> None:
    raise error


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
