"""The cloud-neutral parts of the emulators: fault injection, the HTTP server thread, scratch roots,
the :class:`Emulator` base (start / stop / ``with`` / ``endpoint_url``) and the one
:func:`serve_forever` of ``cloudtrain emulator start``. The run loop of the jobs themselves is in
:mod:`cloudtrain.emulators.job_runner`.

Faults are described by :class:`Faults`, shared by the HTTP layer (:class:`FaultMiddleware`) and the
job runners (preemption). Each rule answers the first ``count`` matching calls:

- ``throttle``: the cloud's throttling error (HTTP 400 ``ThrottlingException`` on AWS JSON APIs);
- ``server_error``: HTTP 500 (``InternalFailure``);
- ``drop_after``: the call is processed, then the connection is closed without a response, so the
  client retries a call that already took effect;
- ``drop_before``: the connection is closed before the call is processed, as a timeout or a reset
  on the way to the service would leave it: nothing took effect;
- ``preempt`` (not an HTTP rule): the next ``count`` preemptible jobs are interrupted once each
  after their first checkpoint, then restarted from it.

Command-line form (``Faults.parse``): ``KIND[:OPERATION]=COUNT``, e.g. ``throttle=2``,
``5xx:SageMaker.DescribeTrainingJob=1``, ``drop-after=1``, ``drop-before=1``, ``preempt=1``. OPERATION is a shell-style
pattern over the emulator's operation names (``Service.Operation``).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, TextIO

HTTP_FAULT_KINDS = ("throttle", "server_error", "drop_after", "drop_before")
_KIND_ALIASES = {"throttle": "throttle", "throttling": "throttle", "5xx": "server_error", "server_error": "server_error",
                 "server-error": "server_error", "drop_after": "drop_after", "drop-after": "drop_after",
                 "drop": "drop_after", "drop_before": "drop_before", "drop-before": "drop_before", "preempt": "preempt", "spot": "preempt", "preemption": "preempt"}
#: Request header that the emulators' own clients send so that faults never hit the emulator itself.
INTERNAL_HEADER = "X-Cloudtrain-Emulator-Internal"


# Variables of the emulator's own process that belong to some job's contract; a job started by an
# emulator must see only what its cloud sets (the Supervisor merges in os.environ).
INHERITED_PREFIXES = ("CLOUDTRAIN_", "SM_", "AIP_", "AZUREML_", "CLOUD_ML_")
INHERITED_NAMES = {"CLUSTER_SPEC", "TF_CONFIG", "RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_ADDR",
                   "MASTER_PORT", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID"}


#: The identity of the emulator's caller, which no job it runs may use: a job acts as what its
#: cloud gives it (its role's container credentials, a managed identity, the metadata server).
CALLER_IDENTITY = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
                   "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                   "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME", "AZURE_PASSWORD",
                   "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                   "GOOGLE_APPLICATION_CREDENTIALS")
#: ... and the files under HOME the SDKs would read it from, pointed at nothing for the job.
CALLER_IDENTITY_FILES = {"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_CONFIG_FILE": "/dev/null",
                         "CLOUDSDK_CONFIG": "/nonexistent/gcloud", "AZURE_CONFIG_DIR": "/nonexistent/azure"}


def without_inherited(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` run under ``env``: without the contract variables (and the caller's cloud identity)
    this process has and ``env`` does not set, and with the caller's credential files hidden."""
    import os

    leaked = sorted(k for k in os.environ if k not in env and (k.startswith(INHERITED_PREFIXES) or k in INHERITED_NAMES
                                                               or k in CALLER_IDENTITY))
    hidden = [f"{k}={v}" for k, v in CALLER_IDENTITY_FILES.items() if k not in env]
    return ["env", *[a for k in leaked for a in ("-u", k)], *hidden, *argv]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def iso_seconds(value: Any) -> float | None:
    """An ISO 8601 duration (``PT1H30M``, ``PT0.5S``; as the clouds' APIs write limits) or a number
    of seconds -> seconds; None for None or a value that is neither."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    import isodate

    try:
        duration = isodate.parse_duration(str(value))
    except (isodate.ISO8601Error, ValueError):
        return None
    return duration.total_seconds() if isinstance(duration, timedelta) else None  # years and months have no fixed length


@dataclass
class FaultRule:
    kind: str
    operation: str
    remaining: int
    injected: int = 0


@dataclass
class Faults:
    """Faults to inject (thread-safe); ``injected`` records ``(kind, operation)`` of each one used."""

    rules: list[FaultRule] = field(default_factory=list)
    preemptions: int = 0
    injected: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1, operation: str = "*") -> "Faults":
        kind = _KIND_ALIASES.get(kind, kind)
        if count < 0:
            raise ValueError("a fault count cannot be negative")
        with self._lock:
            if kind == "preempt":
                self.preemptions += count
            elif kind in HTTP_FAULT_KINDS:
                self.rules.append(FaultRule(kind, operation, count))
            else:
                raise ValueError(f"unknown fault kind {kind!r}; use one of throttle, 5xx, drop-after, drop-before, preempt")
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.preemptions = 0
            self.injected.clear()

    def take(self, operation: str) -> FaultRule | None:
        """The rule to apply to this call (one use consumed), or None."""
        with self._lock:
            for rule in self.rules:
                if rule.remaining > 0 and fnmatch.fnmatchcase(operation, rule.operation):
                    rule.remaining -= 1
                    rule.injected += 1
                    self.injected.append((rule.kind, operation))
                    return rule
        return None

    def take_preemption(self, job: str) -> bool:
        with self._lock:
            if self.preemptions <= 0:
                return False
            self.preemptions -= 1
            self.injected.append(("preempt", job))
            return True

    def count(self, kind: str) -> int:
        kind = _KIND_ALIASES.get(kind, kind)
        with self._lock:
            return sum(1 for k, _ in self.injected if k == kind)

    @classmethod
    def parse(cls, specs: Iterable[str], default_operation: str = "*") -> "Faults":
        """Faults from command-line items ``KIND[:OPERATION]=COUNT`` (COUNT defaults to 1)."""
        faults = cls()
        for spec in specs:
            match = re.fullmatch(r"\s*([A-Za-z0-9_-]+)(?::([^=]+))?(?:=(\d+))?\s*", spec)
            if not match:
                raise ValueError(f"bad fault {spec!r}: expected KIND[:OPERATION]=COUNT, e.g. throttle=2")
            kind, operation, count = match.groups()
            faults.add(kind, int(count) if count else 1, operation or default_operation)
        return faults


ErrorResponder = Callable[[str, str, dict[str, Any]], tuple[str, list[tuple[str, str]], bytes]]


def drain_request_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


class ConnectionDroppedByEmulator(ConnectionAbortedError):
    """Raised inside the server to end a request without a response (werkzeug treats it as a drop)."""


def drop_connection(environ: dict[str, Any], processed: bool = True) -> None:
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionDroppedByEmulator(f"emulator fault: connection dropped {'after' if processed else 'before'} the call was processed")


class FaultMiddleware:
    """WSGI layer that applies :class:`Faults` to calls named by ``operation_of(environ)``."""

    def __init__(self, app: Callable[..., Any], faults: Faults, operation_of: Callable[[dict[str, Any]], str | None],
                 error_response: ErrorResponder) -> None:
        self.app, self.faults, self.operation_of, self.error_response = app, faults, operation_of, error_response

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = "HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")
        operation = None if environ.get(header) else self.operation_of(environ)
        rule = self.faults.take(operation) if operation else None
        if rule is None:
            return self.app(environ, start_response)
        if rule.kind == "drop_before":
            drain_request_body(environ)
            drop_connection(environ, processed=False)
        if rule.kind == "drop_after":
            result = self.app(environ, lambda *args, **kwargs: (lambda data: None))
            try:
                for _ in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
            drop_connection(environ)
        drain_request_body(environ)
        status, headers, body = self.error_response(rule.kind, operation, environ)
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]


def access_log_handler(verbose: bool = False, base: Any = None) -> Any:
    """werkzeug's request handler (or ``base``), writing one access-log line per request only when
    ``verbose`` (``emulator start --verbose``): quiet by default."""
    from werkzeug.serving import WSGIRequestHandler

    base = base or WSGIRequestHandler
    if verbose:
        return base

    class QuietHandler(base):  # type: ignore[misc,valid-type]
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietHandler


class ServerThread:
    """A threaded werkzeug server for ``app`` on ``host:port`` (0: a free port), in a daemon thread;
    HTTPS with ``ssl_context``; access logs only with ``access_log_handler(verbose=True)``."""

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0,
                 request_handler: Any = None, ssl_context: Any = None) -> None:
        self.app, self.host, self.port = app, host, port
        self.request_handler = request_handler or access_log_handler()
        self.ssl_context = ssl_context
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ServerThread":
        from werkzeug.serving import make_server

        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=self.request_handler,
                                   ssl_context=self.ssl_context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"emulator-http-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class ScratchRoot:
    """The directory an emulator lays jobs out under: the given one, or a temporary one it removes."""

    def __init__(self, root: str | Path | None, prefix: str) -> None:
        self.owned = root is None
        self.path = Path(tempfile.mkdtemp(prefix=prefix)) if root is None else Path(root).absolute()
        self.path.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


class Emulator:
    """What every emulator shares: ``start()`` / ``stop()`` / ``with``, its scratch :attr:`root`, the
    jobs it runs (cancelled and awaited on ``stop()``), its faults and :attr:`endpoint_url` (the one
    HTTP endpoint its SDKs are pointed at). A subclass supplies :meth:`start_services` (which sets
    :attr:`http` when it serves HTTP), :meth:`stop_services`, :meth:`emulated_jobs` and
    :meth:`environment` (the variables that point the cloud's SDK and cloudtrain at it)."""

    title: ClassVar[str] = "cloud"
    scratch_prefix: ClassVar[str] = "cloudtrain-emulator-"
    log_requests: bool = False  # one access-log line per HTTP request (`emulator start --verbose`)
    #: The operation a fault given without one applies to (``Faults.parse``).
    default_fault_operation: ClassVar[str] = "*"
    #: Constructor options of ``cloudtrain emulator start`` beyond port, root and faults.
    command_line_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, root: str | Path | None, faults: "Faults | Iterable[str] | None", grace_seconds: float) -> None:
        self.root_argument = root
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults or (), self.default_fault_operation)
        self.grace_seconds = grace_seconds
        self.http: ServerThread | None = None
        self._scratch: ScratchRoot | None = None
        self._running = False

    @classmethod
    def from_command_line(cls, **options: Any) -> Any:
        """The emulator ``cloudtrain emulator start`` runs (``port``, ``root``, ``faults`` as text)."""
        return cls(**{**cls.command_line_options, **options})

    def start_services(self) -> None:
        raise NotImplementedError

    def stop_services(self) -> None:
        """Stop what :meth:`start_services` started, besides :attr:`http` (stopped by ``stop()``)."""

    def emulated_jobs(self) -> list[Any]:
        """The :class:`cloudtrain.emulators.job_runner.EmulatedJob` of every job created."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    def connect_proxy(self) -> Any:
        """The ConnectProxy sending the cloud's hostnames here (its ``proxy`` attribute), or None."""
        return getattr(self, "proxy", None)

    def start(self) -> Any:
        if self._running:
            return self
        self._scratch = ScratchRoot(self.root_argument, self.scratch_prefix)
        self._running = True
        try:
            self.start_services()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End running jobs (as a cancel would), stop the servers, remove a temporary root."""
        jobs = list(self.emulated_jobs()) if self._running else []
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.join(timeout=self.grace_seconds + 10)
        if self._running:
            self.stop_services()
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self._scratch is not None:
            self._scratch.cleanup()
        self._running = False

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def root(self) -> Path:
        if self._scratch is None:
            raise RuntimeError(f"the {self.title} emulator is not started")
        return self._scratch.path

    @property
    def endpoint_url(self) -> str:
        """The emulator's HTTP(S) endpoint, ``http://127.0.0.1:PORT``."""
        if self.http is None:
            raise RuntimeError(f"the {self.title} emulator serves no HTTP endpoint: it is not started (or runs in-process)")
        return self.http.url


def serve_forever(emulator: Any, *, out: TextIO | None = None, stop: threading.Event | None = None) -> None:
    """``cloudtrain emulator start``: start ``emulator`` (or an ``EmulatorGroup``), print ``export
    KEY=value`` lines and a blank line to ``out`` (stdout), serve until SIGINT / SIGTERM (or until
    ``stop`` is set), then stop it, ending its running jobs."""
    import shlex
    import signal
    import sys

    out = out or sys.stdout
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        with emulator:
            for member in getattr(emulator, "members", [emulator]):  # an EmulatorGroup's, or the one
                print(f"{member.title} emulator on {member.endpoint_url} (jobs under {member.root}); Ctrl-C stops it",
                      file=sys.stderr, flush=True)
                for note in getattr(member, "notes", lambda: [])():  # what else a user may reach
                    print(f"  {note}", file=sys.stderr, flush=True)
            for key, value in emulator.environment().items():
                out.write(f"export {key}={shlex.quote(value)}\n")
            out.write("\n")  # the exports are complete: a script reading them can stop here
            out.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
