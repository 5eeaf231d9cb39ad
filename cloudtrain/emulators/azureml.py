"""A local Azure ML workspace (control plane, run history and blob storage) that the real
``azure-ai-ml`` ``MLClient`` talks to, running jobs on this machine.

Two ways to reach it:

- **in-process** (default): the SDK's HTTP (``requests`` under azure-core, blob uploads included) is
  intercepted with the ``responses`` library while the emulator is started; URLs keep Azure's real
  host names and stay ``https``. Hand :attr:`AzureMLEmulator.credential` (a fixed token) to
  ``MLClient`` or to :class:`~cloudtrain.providers.azureml.AzureMLProvider`.
- **server** (``server=True``): an HTTPS server on 127.0.0.1 with a certificate from a local CA
  (trustme), for other processes. :meth:`AzureMLEmulator.environment` gives what they export:
  ``AZUREML_DEV_URL_MFE`` (the SDK's control-plane URL), ``REQUESTS_CA_BUNDLE`` (trust the CA),
  ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` (``DefaultAzureCredential`` takes a token from the
  emulator as from an App Service managed identity), ``HTTPS_PROXY`` / ``NO_PROXY`` and
  ``CLOUDTRAIN_AZUREML_*`` (the workspace). The control plane and run history need no proxy: the
  SDK honours ``AZUREML_DEV_URL_MFE`` and takes the run-history URL from the workspace's discovery
  URL. Storage does: the SDK builds the URL of local inputs, downloads and streamed logs from the
  datastore's account name alone (``https://<account>.blob.core.windows.net``, whatever the
  datastore's endpoint says), so a :class:`~cloudtrain.emulators.proxy.ConnectProxy` tunnels that
  one host name to this server, which presents a certificate for it from its CA. Other hosts pass
  through the proxy unchanged (``proxy_passthrough=False``: refused, for tests).

A user's unchanged script (``MLClient(DefaultAzureCredential(), ...)``, ``command(code=...,
inputs={"data": Input(path="./local")}, environment=<curated name or Environment(image=...,
conda_file=...)>)``, ``jobs.create_or_update``, ``jobs.stream``, ``jobs.download(all=True)``,
``jobs.list(parent_job_name=...)``) works against it with those variables exported. Environments
are recorded, not built: jobs run with the emulator's Python.
The SDK's ``jobs.stream`` prints a job's log only if the job is still in progress when it starts
following it; a short job on this machine could end before that, so with ``queue_until_followed``
(seconds; ``cloudtrain emulator start`` uses 5) a new job waits in ``Queued`` until a client has read
its run details (what ``stream`` does first) or that long, as a real cluster queues it (tests give
it a time no run reaches, so that only the client's reading starts the job).

Jobs run through :mod:`cloudtrain.emulators.azureml_execution` (on
:class:`cloudtrain.providers.process.Supervisor`) and move through Azure ML's states. Sweep jobs
(``jobType: Sweep``) run their trials as child command jobs (:mod:`cloudtrain.emulators.azureml_sweep`:
random and grid sampling; Bayesian sampling draws randomly; bandit, median stopping and
truncation selection policies stop trials as their metrics come in). Every command job's processes,
a trial's too, get ``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID`` and the experiment's name and id as on
Azure ML, so what they log through MLflow (metrics, parameters, ``autolog``, models, artifacts)
lands on the job's run in the emulator's tracking server (:mod:`cloudtrain.emulators.azureml_mlflow`),
in-process too. Faults
(:class:`cloudtrain.emulators.common.Faults`) apply to operations named as in
:func:`cloudtrain.emulators.azureml_service.operation_of`, e.g. ``MachineLearningServices.Jobs.CreateOrUpdate``:
``throttle`` answers 429 with ``Retry-After``, ``server_error`` 500, ``drop_after`` processes the
call and then drops the connection; ``preempt`` takes a spot-tier job's node once after its first
checkpoint (see :mod:`~cloudtrain.emulators.azureml_execution`).

    with AzureMLEmulator() as emulator:
        provider = AzureMLProvider(credential=emulator.credential)
        ...  # specs get the workspace from emulator.overrides (--set) or emulator.settings
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

from cloudtrain.emulators.common import (ConnectionDroppedByEmulator, Emulator, FaultMiddleware, Faults, ServerThread, access_log_handler,
                                         drain_request_body, wait_until)
from cloudtrain.emulators.job_runner import JobSettings

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TOKEN = "cloudtrain-emulator-token"
IDENTITY_HEADER = "cloudtrain-emulator"
TERMINAL = ("Completed", "Failed", "Canceled")
VAULT_HOSTS = "*.vault.azure.net"  # every vault: a job's azure_key_vault secrets name their own


class EmulatorCredential:
    """A token credential that always returns the emulator's fixed token (no network)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)


def azure_error_response(kind: str, operation: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The error Azure answers for an injected fault. Azure Storage throttles with HTTP 503
    ``ServerBusy`` (its documented throttling answer, which the storage SDK retries), not 429."""
    if operation.startswith("Storage."):
        code, status = ("ServerBusy", "503 Service Unavailable") if kind == "throttle" else ("InternalError", "500 Internal Server Error")
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                f"<Message>emulator fault: {operation}</Message></Error>").encode()
        return status, [("Content-Type", "application/xml"), ("x-ms-error-code", code)], body
    if kind == "throttle":
        body = {"error": {"code": "TooManyRequests", "message": f"emulator fault: {operation} is throttled"}}
        return "429 Too Many Requests", [("Content-Type", "application/json"), ("Retry-After", "0.05"),
                                         ("x-ms-error-code", "TooManyRequests")], json.dumps(body).encode()
    body = {"error": {"code": "InternalServerError", "message": f"emulator fault: {operation} failed"}}
    return "500 Internal Server Error", [("Content-Type", "application/json"), ("x-ms-error-code", "InternalServerError")], json.dumps(body).encode()


class _MsiRoute:
    """``GET /msi/token``: tokens for ``DefaultAzureCredential`` (App Service managed identity protocol)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/msi/token":
            return self.app(environ, start_response)
        drain_request_body(environ)
        if environ.get("HTTP_X_IDENTITY_HEADER") != IDENTITY_HEADER:
            body = json.dumps({"error": "invalid_request", "error_description": "missing X-IDENTITY-HEADER"}).encode()
            start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        resource = re.search(r"resource=([^&]*)", environ.get("QUERY_STRING", ""))
        body = json.dumps({"access_token": TOKEN, "expires_on": str(int(time.time()) + 3600), "token_type": "Bearer",
                           "resource": unquote(resource.group(1)) if resource else ""}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class AzureMLEmulator(Emulator):
    """A local Azure ML workspace; see the module docstring. Start it (``start()`` or ``with``)."""

    title = "Azure ML"
    scratch_prefix = "cloudtrain-azureml-"
    #: ``cloudtrain emulator start``: a job waits in Queued until a client follows it (or 5 s), so that
    #: ``jobs.stream`` right after ``create_or_update`` shows a short job's log, as on a real cluster
    command_line_options = {"server": True, "queue_until_followed": 5.0}

    def __init__(self, root: str | Path | None = None, *, server: bool = False, host: str = "127.0.0.1", port: int = 0,
                 subscription_id: str = DEFAULT_SUBSCRIPTION, resource_group: str = "cloudtrain-emulator",
                 workspace: str = "emulator", region: str = "eastus", storage_account: str = "cloudtrainemulator",
                 container: str = "azureml-blobstore-emulator", faults: Faults | Iterable[str] | None = None,
                 grace_seconds: float = 10.0, proxy_passthrough: bool = True, queue_until_followed: float = 0.0) -> None:
        super().__init__(root, faults, grace_seconds)
        self.server, self.host, self.port = server, host, port
        self.subscription_id, self.resource_group, self.workspace, self.region = subscription_id, resource_group, workspace, region
        self.storage_account, self.container = storage_account, container
        self.credential = EmulatorCredential()
        self.service: Any = None
        self.runs: dict[str, Any] = {}
        self._mock: Any = None
        self._ca_path: Path | None = None
        self.proxy_passthrough = proxy_passthrough
        self.proxy: Any = None
        self.tracking: Any = None  # the MLflow tracking server (azureml_mlflow)
        self.queue_until_followed = queue_until_followed

    # -- life cycle ---------------------------------------------------------------------------

    def start_services(self) -> None:
        from cloudtrain.emulators.azureml_service import AzureMLService

        ssl_context = None
        if self.server:
            ssl_context = self._certificate()
            import socket

            if not self.port:
                with socket.socket() as sock:
                    sock.bind((self.host, 0))
                    self.port = sock.getsockname()[1]
        base = f"https://{self.host}:{self.port}" if self.server else None
        self.service = AzureMLService(self.root, region=self.region, storage_account=self.storage_account, container=self.container,
                                      base=base, start_job=self._start_job, cancel_job=self._cancel_job, token=TOKEN)
        app = FaultMiddleware(self.service, self.faults, self._operation_of, azure_error_response)
        from cloudtrain.emulators.azureml_mlflow import MlflowTracking

        # the workspace's MLflow tracking server, for the jobs' processes (on this machine): plain HTTP on loopback
        self.tracking = ServerThread(MlflowTracking(self.service), self.host, 0, access_log_handler(self.log_requests)).start()
        self.service.tracking_url = self.tracking.url
        if self.server:
            self.http = ServerThread(_MsiRoute(app), self.host, self.port, access_log_handler(self.log_requests),
                                     ssl_context=ssl_context).start()
            from cloudtrain.emulators.proxy import ConnectProxy

            # the SDK builds storage URLs from the account name alone (https://<account>.blob.core.windows.net):
            # only a proxy reaches them; this server answers that name with a certificate for it
            self.proxy = ConnectProxy({self.blob_host: (self.host, self.port), VAULT_HOSTS: (self.host, self.port)},
                                      passthrough=self.proxy_passthrough).start()
        else:
            import responses

            self._mock = responses.RequestsMock(assert_all_requests_are_fired=False)
            hosts = (r"https://(management\.azure\.com|[a-z0-9-]+\.api\.azureml\.ms|[a-z0-9-]+\.vault\.azure\.net|"
                     + re.escape(self.storage_account) + r"\.blob\.core\.windows\.net)(:443)?/.*")
            for method in ("GET", "PUT", "POST", "HEAD", "DELETE", "PATCH"):
                self._mock.add_callback(method, re.compile(hosts), callback=lambda request, app=app: self._answer(app, request))
            self._mock.add_passthru(re.compile(r".*"))
            self._mock.start()

    def stop_services(self) -> None:
        if self.tracking is not None:
            self.tracking.stop()
            self.tracking = None
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self._mock is not None:
            self._mock.stop()
            self._mock.reset()
            self._mock = None

    def emulated_jobs(self) -> list[Any]:
        return list(self.runs.values())

    # -- what clients need ------------------------------------------------------------------------

    @property
    def blob_host(self) -> str:
        """The storage account's real host name, which the SDK builds its storage URLs from."""
        return f"{self.storage_account}.blob.core.windows.net"

    @property
    def mlflow_tracking_uri(self) -> str:
        """The MLflow tracking server its jobs log to (``MLFLOW_TRACKING_URI`` in each job), which the
        workspace's ``mlflow_tracking_uri`` also names: a user's ``mlflow.set_tracking_uri`` to it reads
        the jobs' runs and creates runs of its own, as ``azureml://`` with azureml-mlflow does on Azure ML."""
        return self.service.mlflow_tracking_uri(self.service.resource_id(self.subscription_id, self.resource_group, self.workspace))

    def notes(self) -> list[str]:
        return [f"MLflow tracking server of its jobs and the workspace (mlflow.set_tracking_uri reads and creates runs): "
                f"{self.mlflow_tracking_uri}"]

    @property
    def settings(self) -> dict[str, str]:
        """The ``azureml`` settings of a spec that uses this workspace."""
        return {"subscription_id": self.subscription_id, "resource_group": self.resource_group, "workspace": self.workspace,
                "region": self.region}

    @property
    def overrides(self) -> list[str]:
        """The same settings as ``--set`` overrides."""
        return [f"azureml.{key}={value}" for key, value in self.settings.items()]

    def environment(self) -> dict[str, str]:
        """The variables another process exports to reach this (server-mode) emulator."""
        env = {
            "AZUREML_DEV_URL_MFE": self.endpoint_url,
            "REQUESTS_CA_BUNDLE": str(self._ca_path),
            "IDENTITY_ENDPOINT": f"{self.endpoint_url}/msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
            **(self.proxy.environment() if self.proxy is not None else {}),
        }
        env.update({f"CLOUDTRAIN_AZUREML_{key.upper()}": value for key, value in self.settings.items()})
        return env

    def job_environment(self) -> dict[str, str]:
        """What each job's processes get from the emulator's compute in server mode: its managed
        identity (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``), the proxy and the CA bundle, so code in
        the job (``azure_key_vault`` secrets, ``DefaultAzureCredential``, the workspace's storage)
        reaches the emulator as it reaches Azure from Azure ML compute. Nothing in-process."""
        if self.http is None or self.proxy is None:
            return {}
        env = self.environment()
        return {key: env[key] for key in ("REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "HTTPS_PROXY", "https_proxy",
                                          "NO_PROXY", "no_proxy") if key in env}

    def ml_client(self) -> Any:
        """An ``MLClient`` for the emulated workspace (in server mode, after ``AZUREML_DEV_URL_MFE`` is set)."""
        from azure.ai.ml import MLClient

        return MLClient(self.credential, self.subscription_id, self.resource_group, self.workspace, show_progress=False)

    # -- jobs -------------------------------------------------------------------------------------

    def job_names(self) -> list[str]:
        with self.service.lock:
            return list(self.service.jobs)

    def job_count(self) -> int:
        return len(self.job_names())

    def job_status(self, name: str) -> str:
        return self.service.run_status(name)

    def status_history(self, name: str) -> list[str]:
        """Every status the job went through, in order."""
        with self.service.lock:
            return list(self.service.runs[name]["history"])

    def wait_for_status(self, name: str, statuses: Iterable[str] = TERMINAL, timeout: float = 60.0) -> str:
        wanted = set(statuses)
        return wait_until(lambda: self.job_status(name) if self.job_status(name) in wanted else None, timeout=timeout,
                          what=f"job {name} to reach {sorted(wanted)}")

    def _may_start(self, job: Any) -> bool:
        """Whether a queued job gets its node: at once, or with ``queue_until_followed`` seconds once a
        client read its run details (``jobs.stream`` does) or after that long."""
        if self.queue_until_followed <= 0 or self.service.runs[job.name].get("parent"):  # a sweep's trial: the sweep starts it
            return True
        return bool(self.run_details_reads(job.name)) or time.monotonic() - job.created >= self.queue_until_followed

    def run_details_reads(self, name: str) -> int:
        """How many times a client read the job's run details (``jobs.stream`` does while it follows the job)."""
        with self.service.lock:
            return self.service.run_history.detail_reads.get(name, 0)

    def blob(self, name: str) -> bytes:
        """A blob of the workspace's default container (e.g. ``ExperimentRun/dcid.<job>/user_logs/std_log.txt``)."""
        return self.service.blobs.path(self.container, name).read_bytes()

    def blob_names(self, prefix: str = "") -> list[str]:
        return self.service.blobs.list(self.container, prefix)

    def _start_job(self, document: dict[str, Any]) -> None:
        from cloudtrain.emulators.azureml_execution import JobRun

        from cloudtrain.emulators.azureml_mlflow import run_environment

        if document["properties"].get("jobType") == "Sweep":
            from cloudtrain.emulators.azureml_sweep import SweepRun

            sweep = self.runs[document["name"]] = SweepRun(self.service, document["name"], self._create_trial, self._cancel_job)
            sweep.start()
            return
        # as Azure ML's compute gives every job's processes: the workspace's MLflow tracking server and the job's run
        workspace = self.service.resource_id(*self.service.runs[document["name"]]["workspace"])
        experiment = document["properties"].get("experimentName") or "Default"
        platform = {**self.job_environment(), **run_environment(self.tracking.url, workspace, document["name"], experiment)}
        self.runs[document["name"]] = JobRun(self.service, self.root, document, JobSettings(self.faults, self.grace_seconds),
                                             may_start=self._may_start, platform_environment=platform).start()

    def _create_trial(self, parent: str, name: str, properties: dict[str, Any]) -> None:
        """Record and start a sweep's trial: a child command job of ``parent``."""
        self.service.record_job(self.service.runs[parent]["workspace"], name, {"properties": properties}, parent=parent)
        self._start_job(json.loads(json.dumps(self.service.jobs[name])))

    def _cancel_job(self, name: str) -> None:
        run = self.runs.get(name)
        if run is not None:
            run.cancel()

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _operation_of(environ: dict[str, Any]) -> str | None:
        from cloudtrain.emulators.azureml_service import operation_of

        return operation_of(environ)

    def _certificate(self) -> Any:
        import ssl

        import trustme

        authority = trustme.CA(organization_name="cloudtrain emulator")
        certificate = authority.issue_cert(self.host, "localhost", self.blob_host, VAULT_HOSTS)
        # REQUESTS_CA_BUNDLE replaces the roots `requests` trusts: the bundle exported holds the
        # system's (certifi's) roots too, so other HTTPS calls in the user's shell keep working.
        import certifi

        self._ca_path = self.root / "emulator-ca-bundle.pem"
        self._ca_path.write_bytes(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + authority.cert_pem.bytes())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(context)
        return context

    @staticmethod
    def _answer(app: Callable[..., Any], request: Any) -> tuple[int, dict[str, str], bytes]:
        """Run one intercepted ``requests`` request through the WSGI app."""
        import requests
        from urllib3.exceptions import ProtocolError

        url = urlsplit(request.url)
        body = request.body
        if body is None:
            data = b""
        elif isinstance(body, str):
            data = body.encode()
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif hasattr(body, "read"):
            data = body.read()
            data = data.encode() if isinstance(data, str) else data
        else:
            data = b"".join(part.encode() if isinstance(part, str) else part for part in body)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method, "SCRIPT_NAME": "",
            "PATH_INFO": unquote(url.path).encode("utf-8").decode("latin-1"), "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "", "SERVER_PORT": str(url.port or 443), "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": url.netloc, "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "wsgi.input": io.BytesIO(data), "wsgi.errors": sys.stderr, "wsgi.url_scheme": url.scheme, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for key, value in request.headers.items():
            name = key.upper().replace("-", "_")
            if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[f"HTTP_{name}"] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = int(status.split()[0]), headers
            return lambda chunk: None

        try:
            result = app(environ, start_response)
            payload = b"".join(result)
        except ConnectionDroppedByEmulator:
            from http.client import RemoteDisconnected

            raise requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection without response"))) from None
        headers = {k: v for k, v in captured["headers"] if k.lower() != "content-length"}
        return captured["status"], headers, payload


__all__ = ["AzureMLEmulator", "EmulatorCredential", "DEFAULT_SUBSCRIPTION", "TERMINAL"]
