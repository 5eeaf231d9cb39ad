"""A local SageMaker: an HTTP server on 127.0.0.1 that boto3 (and the SageMaker SDK) talk to unchanged.

moto answers S3, IAM, CloudWatch Logs and the SageMaker API; a WSGI layer in front of it adds what
moto lacks or gets wrong for training jobs:

- CreateTrainingJob: server-side checks the real service makes and moto skips (job name pattern,
  instance type, ``MaxWaitTimeInSeconds`` for spot, a name already used -> ValidationException),
  then the job is created in moto and run (:mod:`cloudtrain.emulators.sagemaker_jobs`) with its
  Environment and MetricDefinitions kept as sent;
- StopTrainingJob (absent from moto): Stopping, SIGTERM, grace period, SIGKILL, Stopped;
- iam:SimulatePrincipalPolicy (absent from moto; the SageMaker Python SDK v3 checks the training role
  with it): decided from the principal's policies in moto (:mod:`cloudtrain.emulators.sagemaker_iam`);
- the container credentials endpoint of a job (``AWS_CONTAINER_CREDENTIALS_FULL_URI``, with
  ``AWS_ENDPOINT_URL``, in the job's environment): the job's role credentials from moto's
  sts:AssumeRole, so boto3 inside a job (Secrets Manager for ``aws_secret``, S3...) works as on
  SageMaker, without keys in the job's environment;
- fault injection (:mod:`cloudtrain.emulators.common`): throttling (HTTP 400 ThrottlingException),
  HTTP 500 InternalFailure, a connection dropped after a create was processed, spot interruption.

Operation names for faults are ``Service.Operation`` for JSON APIs (``SageMaker.CreateTrainingJob``,
``Logs.GetLogEvents``) and ``Service.METHOD`` for the others (``S3.PUT``, ``IAM.POST``).

The account starts with an execution role and a bucket, and :meth:`SageMakerEmulator.environment`
names a SageMaker Python SDK defaults file with the role (:mod:`cloudtrain.emulators.sagemaker_account`),
so SDK code that passes no role runs unchanged. Calls to AWS's own hostnames (STS at the fixed
address the SDK uses, ``*.amazonaws.com``) reach the emulator through an HTTPS proxy it exports
(:mod:`cloudtrain.emulators.sagemaker_https`).

moto keeps its state in process-wide backends: an emulator resets them when it starts (``reset=True``),
so run one emulator per process at a time. The emulator's own S3 and IAM calls go through its HTTP
endpoint with a header that exempts them from faults.

    with SageMakerEmulator() as emulator:
        sm = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, ...)
        os.environ.update(emulator.environment())   # or: eval "$(cloudtrain emulator start ...)"
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from cloudtrain.emulators.common import (INTERNAL_HEADER, Emulator, FaultMiddleware, Faults, ServerThread, drain_request_body,
                                         access_log_handler,
                                         wait_until)
from cloudtrain.emulators import sagemaker_account, sagemaker_tuning
from cloudtrain.emulators.sagemaker_validation import validate_create
from cloudtrain.emulators.sagemaker_https import AwsHostnames
from cloudtrain.emulators.job_runner import JobSettings
from cloudtrain.emulators.sagemaker_jobs import TERMINAL, TrainingJobRun

DEFAULT_REGION = "us-east-1"
ROLE_NAME = sagemaker_account.ROLE_NAME
CREATE = "SageMaker.CreateTrainingJob"
#: The operation a fault given without one applies to (``throttle=2`` means CreateTrainingJob).
DEFAULT_FAULT_OPERATION = CREATE
#: Where a job's processes get their role's credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI + job name).
CREDENTIALS_PATH = "/_cloudtrain/container-credentials/"
_SERVICE_NAMES = {"Logs_20140328": "Logs", "AmazonSageMaker": "SageMaker"}


def _credential_scope(environ: dict[str, Any]) -> list[str]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=([^,\s]+)", auth)
    return match.group(1).split("/") if match else []


def operation_of(environ: dict[str, Any]) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        service, _, operation = target.partition(".")
        return f"{_SERVICE_NAMES.get(service, service)}.{operation}"
    scope = _credential_scope(environ)
    service = scope[3] if len(scope) == 5 else "unknown"
    return f"{service.upper() if len(service) <= 3 else service.capitalize()}.{environ.get('REQUEST_METHOD', 'GET')}"


def _json_error(status: str, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4())),
                    ("x-amzn-ErrorType", code)], body


def error_response(kind: str, operation: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The error each fault answers with, in the protocol of the called API."""
    throttle = kind == "throttle"
    if environ.get("HTTP_X_AMZ_TARGET"):
        if throttle:
            return _json_error("400 Bad Request", "ThrottlingException", "Rate exceeded")
        return _json_error("500 Internal Server Error", "InternalFailure", "The request processing has failed because of an unknown error.")
    if operation.startswith("S3."):
        code, status = ("SlowDown", "503 Slow Down") if throttle else ("InternalError", "500 Internal Server Error")
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>emulated fault</Message></Error>"
    else:
        code, status = ("Throttling", "400 Bad Request") if throttle else ("InternalFailure", "500 Internal Server Error")
        body = (f"<ErrorResponse><Error><Type>{'Sender' if throttle else 'Receiver'}</Type><Code>{code}</Code>"
                f"<Message>emulated fault</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return status, [("Content-Type", "text/xml")], body.encode()


class SageMakerApi:
    """WSGI layer in front of moto: CreateTrainingJob and StopTrainingJob as the real service does them."""

    def __init__(self, emulator: "SageMakerEmulator", moto_app: Callable[..., Any]) -> None:
        self.emulator, self.moto_app = emulator, moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if environ.get("PATH_INFO", "").startswith(CREDENTIALS_PATH) and not target:
            return self._container_credentials(environ, start_response)
        if target == CREATE:
            return self._create(environ, start_response)
        if target == "SageMaker.StopTrainingJob":
            return self._stop(environ, start_response)
        if target in sagemaker_tuning.OPERATIONS:  # tuning jobs run for real (moto's run nothing)
            return sagemaker_tuning.handle(self, environ, start_response)
        if not target and operation_of(environ) == "IAM.POST":
            return self._iam(environ, start_response)
        return self.moto_app(environ, start_response)

    def _container_credentials(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A job's role credentials, as the container credentials endpoint serves them to botocore."""
        run = self.emulator._runs.get(environ["PATH_INFO"][len(CREDENTIALS_PATH):])
        if run is None:
            body = json.dumps({"code": "NotFound", "message": "no such training job"}).encode()
            return self._answer(start_response, ("404 Not Found", [("Content-Type", "application/json")], body))
        body = json.dumps(self.emulator.job_credentials(run)).encode()
        return self._answer(start_response, ("200 OK", [("Content-Type", "application/json")], body))

    def _iam(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """IAM's query API: SimulatePrincipalPolicy here (moto lacks it), the rest to moto."""
        from cloudtrain.emulators import sagemaker_iam

        body = drain_request_body(environ)
        form = sagemaker_iam.parse_form(body)
        if sagemaker_iam.is_simulation(form):
            return self._answer(start_response, sagemaker_iam.simulate(self.account_and_region(environ)[0], form))
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return self.moto_app(environ, start_response)

    @staticmethod
    def _answer(start_response: Callable[..., Any], response: tuple[str, list[tuple[str, str]], bytes]) -> list[bytes]:
        status, headers, body = response
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def _invalid(self, start_response: Callable[..., Any], message: str) -> list[bytes]:
        return self._answer(start_response, _json_error("400 Bad Request", "ValidationException", message))

    @staticmethod
    def account_and_region(environ: dict[str, Any]) -> tuple[str, str]:
        """The account and region moto files this call under (its own rules, in the same order)."""
        scope = _credential_scope(environ)
        region = scope[2] if len(scope) == 5 else DEFAULT_REGION
        if "MOTO_ACCOUNT_ID" in os.environ:
            return os.environ["MOTO_ACCOUNT_ID"], region
        if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
            return environ["HTTP_X_MOTO_ACCOUNT_ID"], region
        from moto.iam.models import get_account_id_from

        return get_account_id_from(scope[0] if scope else "AKIAEXAMPLE"), region

    def _create(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from moto.sagemaker.models import sagemaker_backends

        body = drain_request_body(environ)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return self._invalid(start_response, "the request body is not JSON")
        problem = validate_create(request)
        if problem:
            return self._invalid(start_response, problem)
        account, region = self.account_and_region(environ)
        name = request["TrainingJobName"]
        with self.emulator._create_lock:
            backend = sagemaker_backends[account][region]
            if name in backend.training_jobs:
                arn = backend.training_jobs[name].arn
                return self._invalid(start_response, "Training job names must be unique within an AWS account and region, "
                                                     f"and a training job with this name already exists ({arn})")
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
                captured.update(status=status, headers=headers)
                return lambda data: None

            result = self.moto_app(environ, capture)
            chunks = b"".join(result)
            if captured["status"].startswith("200") and name in backend.training_jobs:
                self.emulator._job_created(request, backend.training_jobs[name], account, region)
        start_response(captured["status"], captured["headers"])
        return [chunks]

    def _stop(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from moto.sagemaker.models import sagemaker_backends

        name = json.loads(drain_request_body(environ) or b"{}").get("TrainingJobName", "")
        account, region = self.account_and_region(environ)
        fake = sagemaker_backends[account][region].training_jobs.get(name)
        if fake is None:
            return self._invalid(start_response, f"Could not find training job '{name}'.")
        run = self.emulator._runs.get(name)
        stopping = run.cancel() if run is not None and run.fake is fake else fake.training_job_status not in TERMINAL
        if not stopping:
            return self._invalid(start_response, f"The request was rejected because the training job is in status {fake.training_job_status}.")
        if run is None or run.fake is not fake:  # a job this emulator does not run: just record the stop
            fake.training_job_status = fake.secondary_status = "Stopped"
        return self._answer(start_response, ("200 OK", [("Content-Type", "application/x-amz-json-1.1")], b"{}"))


class SageMakerEmulator(Emulator):
    """A local SageMaker endpoint (see the module docstring). ``start()``/``stop()`` or ``with``.

    ``root``: where jobs are laid out (``<root>/jobs/<job>/algo-N/opt/ml``); default a temporary
    directory removed at ``stop()``. ``faults``: a :class:`Faults`, or command-line items such as
    ``["throttle=2", "5xx:SageMaker.DescribeTrainingJob=1", "drop-after", "preempt"]`` (or set them later with
    :meth:`throttle`, :meth:`fail_with_server_error`, :meth:`drop_connection_after`,
    :meth:`interrupt_spot_jobs`). ``stop_grace_seconds``: time between SIGTERM and SIGKILL on a stop.
    """

    title = "SageMaker"
    scratch_prefix = "cloudtrain-sagemaker-"
    default_fault_operation = DEFAULT_FAULT_OPERATION
    command_line_options: dict[str, Any] = {}

    def __init__(self, port: int = 0, root: str | Path | None = None, faults: Faults | Iterable[str] | None = None, *,
                 host: str = "127.0.0.1", region: str = DEFAULT_REGION, stop_grace_seconds: float = 10.0,
                 reset: bool = True, log_requests: bool = False, aws_hostnames: bool = True,
                 proxy_passthrough: bool = True) -> None:
        super().__init__(root, faults, stop_grace_seconds)
        self.aws_hostnames, self.proxy_passthrough = aws_hostnames, proxy_passthrough
        self.hostnames: AwsHostnames | None = None
        self.port, self.host, self.region = port, host, region
        self.reset, self.log_requests = reset, log_requests
        self.account_id = "123456789012"
        self._runs: dict[str, TrainingJobRun] = {}
        self._create_lock = threading.Lock()
        self._s3: Any = None
        self._sts: Any = None
        self._credentials: dict[str, dict[str, Any]] = {}
        self.sdk_defaults: Path | None = None
        self.caller: dict[str, str] | None = None  # a session of the execution role (sagemaker_account.role_session)

    # -- lifecycle ----------------------------------------------------------------------------

    def start_services(self) -> None:
        import boto3
        from botocore.config import Config
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        if self.reset:
            from moto.moto_api._internal import moto_api_backend

            moto_api_backend.reset()
        self.account_id = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
        app = FaultMiddleware(SageMakerApi(self, DomainDispatcherApplication(create_backend_app)), self.faults,
                              operation_of, error_response)
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        handler = access_log_handler(self.log_requests, MotoRequestHandler)
        self.http = ServerThread(app, self.host, self.port, handler).start()
        if self.aws_hostnames:
            self.hostnames = AwsHostnames(app, self.root, self.region, host=self.host, passthrough=self.proxy_passthrough,
                                          request_handler=handler).start()
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region)
        clients = {}
        for service in ("s3", "iam", "sts"):
            client = session.client(service, endpoint_url=self.endpoint_url, config=Config(retries={"mode": "standard"}))
            client.meta.events.register("before-sign", lambda request, **kwargs: request.headers.__setitem__(INTERNAL_HEADER, "1"))
            clients[service] = client
        sagemaker_account.set_up(clients["iam"], clients["s3"], self.bucket)
        self.sdk_defaults = sagemaker_account.write_sdk_defaults(self.root, self.role_arn)
        self.caller = sagemaker_account.role_session(clients["sts"], self.role_arn)  # what the exports act as
        self._s3, self._sts = clients["s3"], clients["sts"]

    def stop_services(self) -> None:
        if self.hostnames is not None:
            self.hostnames.stop()
            self.hostnames = None

    def connect_proxy(self) -> Any:
        return self.hostnames.proxy if self.hostnames else None

    def emulated_jobs(self) -> list[Any]:
        return [*sagemaker_tuning.tuning_jobs(self), *self._runs.values()]  # tuners first: no trial starts after

    @property
    def stop_grace_seconds(self) -> float:
        return self.grace_seconds

    # -- where it is --------------------------------------------------------------------------

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{ROLE_NAME}"

    @property
    def bucket(self) -> str:
        return f"cloudtrain-emulator-{self.account_id}"

    def environment(self) -> dict[str, str]:
        """The variables that point boto3, the SageMaker Python SDK and cloudtrain at this emulator, as a
        session of its execution role (a SageMaker notebook's caller: ``get_execution_role()`` answers it)."""
        proxy = self.hostnames.environment() if self.hostnames else {}  # HTTPS_PROXY, NO_PROXY, AWS_CA_BUNDLE
        caller = self.caller or {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        return {**proxy, "AWS_ENDPOINT_URL": self.endpoint_url, **caller, "AWS_DEFAULT_REGION": self.region,
                "CLOUDTRAIN_SAGEMAKER_REGION": self.region,
                "CLOUDTRAIN_SAGEMAKER_ROLE_ARN": self.role_arn, "CLOUDTRAIN_SAGEMAKER_BUCKET": self.bucket,
                "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(self.sdk_defaults)}

    # -- faults -------------------------------------------------------------------------------

    def throttle(self, count: int = 1, operation: str = CREATE) -> None:
        """The next ``count`` calls matching ``operation`` answer HTTP 400 ThrottlingException."""
        self.faults.add("throttle", count, operation)

    def fail_with_server_error(self, count: int = 1, operation: str = CREATE) -> None:
        """The next ``count`` calls matching ``operation`` answer HTTP 500 InternalFailure."""
        self.faults.add("server_error", count, operation)

    def drop_connection_after(self, count: int = 1, operation: str = CREATE) -> None:
        """The next ``count`` matching calls are processed, then their connection is closed unanswered."""
        self.faults.add("drop_after", count, operation)

    def interrupt_spot_jobs(self, count: int = 1) -> None:
        """The next ``count`` managed-spot jobs are interrupted once after their first checkpoint."""
        self.faults.add("preempt", count)

    # -- jobs ---------------------------------------------------------------------------------

    def _job_created(self, request: dict[str, Any], fake: Any, account: str, region: str) -> None:
        name = request["TrainingJobName"]
        root = self.root / "jobs" / name
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        platform = {**(self.hostnames.environment() if self.hostnames else {}), "AWS_ENDPOINT_URL": self.endpoint_url,
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{self.endpoint_url}{CREDENTIALS_PATH}{name}"}
        run = TrainingJobRun(request, fake, account, region, root, self._s3, JobSettings(self.faults, self.grace_seconds),
                             platform_environment=platform)
        self._runs[name] = run
        run.start()

    def job_credentials(self, run: TrainingJobRun) -> dict[str, str]:
        """Temporary credentials of the job's role (sts:AssumeRole in moto), issued again when the
        ones given last expire within 15 minutes (botocore refreshes before expiry, as on SageMaker)."""
        import datetime

        with self._create_lock:
            given = self._credentials.get(run.name)
            soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=15)
            if given is None or given["_expires"] <= soon:
                issued = self._sts.assume_role(RoleArn=run.request["RoleArn"], RoleSessionName=f"SageMaker-{run.name}"[:64])
                credentials = issued["Credentials"]
                expires = credentials["Expiration"]
                expires = expires if expires.tzinfo else expires.replace(tzinfo=datetime.timezone.utc)
                self._credentials[run.name] = given = {
                    "AccessKeyId": credentials["AccessKeyId"], "SecretAccessKey": credentials["SecretAccessKey"],
                    "Token": credentials["SessionToken"], "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "_expires": expires}
            return {key: value for key, value in given.items() if not key.startswith("_")}

    def training_jobs(self) -> list[str]:
        """Names of the jobs created through this emulator, oldest first (each created once)."""
        return list(self._runs)

    @property
    def create_count(self) -> int:
        """How many CreateTrainingJob calls created a job."""
        return len(self._runs)

    def job(self, name: str) -> TrainingJobRun:
        return self._runs[name]

    def job_root(self, name: str) -> Path:
        return self._runs[name].root

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until every job this emulator runs has ended (TimeoutError after ``timeout`` s)."""
        wait_until(lambda: not any(job.thread.is_alive() for job in self.emulated_jobs()), timeout, what="jobs to end")  # tuners too

    def wait_for_job(self, name: str, timeout: float = 60.0) -> str:
        """Wait until job ``name`` ends; returns its TrainingJobStatus."""
        run = self._runs[name]
        run.thread.join(timeout)
        if run.thread.is_alive():
            raise TimeoutError(f"job {name} still {run.status} after {timeout:g}s")
        return run.status
