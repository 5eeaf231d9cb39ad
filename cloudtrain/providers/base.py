"""The backend contract: what every execution backend (local, SageMaker, Azure ML, Vertex AI, or a
plugin's) is, and the logic they all share.

A backend is a subclass of :class:`Provider`, registered by name (built-ins in
:mod:`cloudtrain.providers.registry`, others through the ``cloudtrain.providers`` entry-point group,
``toy = toyct:ToyProvider``). It declares:

``name``
    The backend's name: the value of ``--cloud``, the spec's and config's section for its
    settings, and the ``<BACKEND>`` in ``CLOUDTRAIN_<BACKEND>_<KEY>`` variables.
``capabilities``
    A :class:`Capabilities` feature set. A feature the plan needs and the backend lacks is refused
    once, at plan time, naming the spec field (:meth:`Provider.check`). ``Capabilities()`` with no
    arguments is a valid, minimal set: one node, no spot, no images, local inputs, env secrets.
``settings_model``
    A pydantic model of the backend's own section of a spec or config (``toy: {root: ..., queue:
    gpu}``). The spec validates that section with it, so errors name ``toy.queue``; the plan
    carries the validated section as ``plan.settings`` (a dict).
``region_setting``, ``native_variables``, ``machines_from_catalog``
    Which setting names the region (``region``, ``location``), which of the cloud's own
    environment variables fill which setting (``AWS_REGION`` -> ``region``), and whether
    machines and prices come from cloudtrain's catalog (a backend without catalog offers still
    plans, renders and submits; ``estimate`` shows it as unpriced).

The flow, and who does what:

``check(plan)``
    Refuse, before anything runs, what this backend cannot do. Pure. The base class checks the
    capabilities; :meth:`Provider.check_settings` adds what is particular to the backend.
``render(plan) -> NativeRequest``
    The exact request that :meth:`submit` will send, in the backend's own format (boto3 kwargs,
    Azure ML job YAML, Vertex REST JSON, the local command line). Pure: no network, no upload, no
    mutation. ``submit --dry-run`` prints it; tests compare it with golden files.
``submit(plan, request) -> JobRef``
    Shared here: :meth:`stage` (upload code and inputs), then an idempotent create
    (:meth:`create_once`): the runner has recorded the job before; before each attempt the
    backend may look for the job this submission already created (:meth:`find_submission`); a
    create answered "already exists" is this submission's job when :meth:`find_submission` says
    so; transient failures are retried; a create whose fate is unknown raises
    :class:`~cloudtrain.errors.SubmissionUncertainError` (the job stays PENDING and resumable).
``status(ref) -> JobStatus``
    The job's state mapped to one neutral :class:`JobState` through a table in each module.
``logs(ref, follow) -> Iterator[str]``
    Shared here: the job's log lines in order; with ``follow`` it keeps reading until the job
    ends. A backend implements :meth:`read_logs` (the lines after a cursor).
``cancel(ref)``
    Ask the backend to stop the job; the state goes through CANCELLING to CANCELLED.

SDK failures become :class:`~cloudtrain.errors.CloudtrainError` s with hints in one place per
backend (:meth:`Provider.translate_error`), used through :meth:`Provider.call`. Each backend creates
its SDK client in one place and accepts one handed in (``client=``), so tests and the emulators
exercise the real SDK code paths without patching. Cloud SDKs are imported inside functions, never
at module import.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

from pydantic import BaseModel, ConfigDict

from cloudtrain.errors import CloudtrainError, ProviderError, SubmissionUncertainError, UnsupportedFeatureError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan


class JobState(str, enum.Enum):
    """The neutral job states every provider maps its own states to."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; a plan needing anything else is refused at plan time.

    ``Capabilities()`` is the minimal set: one node, no spot capacity, no checkpoint location, no
    container images, local inputs only, secrets from environment variables, and logs read once
    the job ended (``log_streaming=False``: ``logs --follow`` waits for the end)."""

    spot: bool = False  # spot.enabled
    multi_node: bool = False  # resources.nodes > 1
    checkpoints: bool = False  # checkpoint.enabled: the backend keeps a checkpoint directory across restarts
    log_streaming: bool = False  # logs can be read while the job runs
    container_images: bool = False  # image:
    input_schemes: tuple[str, ...] = ("local",)  # inputs.*: "local" or URI schemes ("s3", "gs", ...)
    secret_sources: tuple[str, ...] = ("env",)  # secrets.*: env, aws_secret, azure_key_vault, gcp_secret
    sweep_jobs: bool = False  # a sweep can be submitted to the backend's tuning service (submit_sweep)


class NoSettings(BaseModel):
    """The settings of a backend that takes none: its section, if given, must be empty."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


@dataclass(frozen=True)
class NativeRequest:
    """A provider's own request, exactly as it will be sent."""

    cloud: str
    payload: Any  # JSON-ready (dict) for sagemaker/vertex/local, a dict rendered as YAML for azureml
    format: str = "json"  # "json" or "yaml": how `--dry-run` prints it

    def to_text(self) -> str:
        if self.format == "yaml":
            import yaml

            return yaml.safe_dump(self.payload, sort_keys=False, default_flow_style=False)
        return json.dumps(self.payload, indent=2, sort_keys=False, default=str)


@dataclass(frozen=True)
class JobRef:
    """How to find a job again: the store id, the backend's own id and where it lives."""

    job_id: str
    cloud: str
    native_id: str
    region: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    native_state: str
    message: str | None = None  # failure reason or secondary status
    started_at: datetime | None = None
    ended_at: datetime | None = None
    model_uri: str | None = None  # where the trained model is, once there is one
    exit_code: int | None = None


class CreateOutcome(enum.Enum):
    """How :meth:`Provider.classify_create_error` sorts a failed create call."""

    ALREADY_EXISTS = "already exists"  # the name is taken: this submission's job if find_submission finds it
    TRANSIENT = "transient"  # throttled, 5xx, dropped: safe to look again and retry
    NOT_SENT = "not sent"  # never reached the service (refused, no route, TLS) after the SDK's own retries
    UNCERTAIN = "uncertain"  # no answer after the SDK's own retries: it may have been accepted
    FATAL = "fatal"  # refused: nothing was created


SECRET_SOURCES = ("env", "aws_secret", "azure_key_vault", "gcp_secret")


class Provider:
    """The base class of every backend (see the module docstring for the contract)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    region_setting: ClassVar[str | None] = None  # the settings key holding the region, if any
    native_variables: ClassVar[dict[str, tuple[str, ...]]] = {}  # setting -> the cloud's own variables filling it
    machines_from_catalog: ClassVar[bool] = False  # offers (machines, prices) come from cloudtrain's catalog
    settings_examples: ClassVar[dict[str, str]] = {}  # required setting -> an example value, for error hints
    #: required setting -> the stand-in a dry run renders while it is not set (valid where the request checks it)
    settings_placeholders: ClassVar[dict[str, str]] = {}

    #: seconds between reads while following logs, and between create attempts (doubling)
    poll_seconds: float = 2.0
    retry_seconds: float = 0.25
    create_attempts: int = 4

    # -- plan time ------------------------------------------------------------------------------

    def check(self, plan: "Plan") -> None:
        """Refuse what this backend cannot do: the capabilities, then :meth:`check_settings`."""
        check_capabilities(self, plan)
        self.check_settings(plan)

    def check_settings(self, plan: "Plan") -> None:
        """Backend-specific plan-time checks; by default, every key of ``settings_examples`` is set."""
        missing = [key for key in self.settings_examples if not plan.settings.get(key)]
        if missing:
            raise missing_settings_error(self.name, missing, self.settings_examples)

    @classmethod
    def with_placeholders(cls, settings: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """For a dry run before set-up: the settings with a stand-in for each required one that is
        missing, and the names of those (``sagemaker.role_arn``...)."""
        missing = [key for key in cls.settings_examples if not settings.get(key)]
        filled = {**settings, **{key: cls.settings_placeholders.get(key, f"SET-{cls.name}.{key}") for key in missing}}
        return filled, tuple(f"{cls.name}.{key}" for key in missing)

    @classmethod
    def region_of(cls, settings: dict[str, Any]) -> str | None:
        """The region named by the backend's settings, if it has such a setting."""
        return settings.get(cls.region_setting) if cls.region_setting else None

    def adjust_plan(self, plan: "Plan") -> "Plan":
        """Refine a plan with what only the backend knows (e.g. the local machine's GPUs). Pure."""
        return plan

    def render(self, plan: "Plan") -> NativeRequest:
        raise NotImplementedError

    # -- submission -----------------------------------------------------------------------------

    def submit(self, plan: "Plan", request: NativeRequest) -> JobRef:
        """Stage, then create the job once (see the module docstring)."""
        self.stage(plan, request)
        native_id = self.create_once(plan, request)
        return self.ref(plan, native_id)

    def stage(self, plan: "Plan", request: NativeRequest) -> None:
        """Upload what the job needs (code bundle, local inputs) before the create call."""

    def create(self, plan: "Plan", request: NativeRequest) -> str:
        """Send the create request once; returns the backend's id of the new job."""
        raise NotImplementedError

    def find_submission(self, plan: "Plan") -> str | None:
        """The id of the job this submission (``plan.submission_token``) created, or None."""
        return None

    lookup_before_create: ClassVar[bool] = False  # call find_submission before every attempt

    def classify_create_error(self, error: Exception) -> CreateOutcome:
        return CreateOutcome.FATAL

    def create_once(self, plan: "Plan", request: NativeRequest) -> str:
        """Record -> create -> "already exists" is ours: never a second job for one submission."""
        delay = self.retry_seconds
        sent = False  # whether an attempt may have reached the service
        for attempt in range(1, self.create_attempts + 1):
            if self.lookup_before_create:
                found = self.find_submission(plan)
                if found is not None:
                    return found
            try:
                return self.create(plan, request)
            except CloudtrainError:
                raise
            except Exception as error:  # noqa: BLE001 - sorted and translated below
                outcome = self.classify_create_error(error)
                if outcome is CreateOutcome.ALREADY_EXISTS:
                    found = self.find_submission(plan)
                    if found is not None:
                        return found
                    raise ProviderError(f"another job named {plan.job_name} already exists on {self.name}",
                                        "submit again: a new submission gets a new job name") from None
                if outcome is CreateOutcome.NOT_SENT and not sent:  # the SDK retried already: nothing was created
                    raise self.translate_error(f"create the job {plan.job_name}", error) from None
                sent = sent or outcome is not CreateOutcome.NOT_SENT
                if outcome is CreateOutcome.UNCERTAIN or (outcome is not CreateOutcome.FATAL and attempt == self.create_attempts):
                    raise self.uncertain_error(plan, error) from None
                if outcome is CreateOutcome.FATAL:
                    raise self.translate_error(f"create the job {plan.job_name}", error) from None
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def uncertain_error(self, plan: "Plan", error: Exception) -> SubmissionUncertainError:
        return SubmissionUncertainError(
            f"no answer from {self.name} to the create request of {plan.job_name} ({_brief(error)}); it may have been accepted",
            f"`cloudtrain status {plan.job_name}` asks {self.name} whether the job exists; "
            f"`cloudtrain submit SPEC --resume {plan.job_name}` sends it again (it is never created twice)",
        )

    def ref(self, plan: "Plan", native_id: str) -> JobRef:
        """The reference recorded for a submitted job."""
        return JobRef(job_id=plan.job_name, cloud=self.name, native_id=native_id, region=plan.region,
                      details={"submission_token": plan.submission_token})

    def run_foreground(self, plan: "Plan", request: NativeRequest, on_line: Callable[[str], None] | None = None,
                       on_start: Callable[[JobRef], None] | None = None) -> tuple[JobRef, JobStatus]:
        """Run the job and return when it ends (``cloudtrain run``): by default, submit it and follow
        its logs; a backend that runs jobs in this process overrides it."""
        ref = self.submit(plan, request)
        if on_start is not None:
            on_start(ref)
        for line in self.logs(ref, follow=True):
            if on_line is not None:
                on_line(line)
        return ref, self.status(ref)

    # -- sweeps: the backend's own tuning service (optional) ------------------------------------

    def render_sweep(self, plan: "Plan", sweep: Any) -> NativeRequest:
        """The tuning request for ``sweep`` over trials like ``plan``'s job, validated. Pure."""
        raise UnsupportedFeatureError(f"sweep: the {self.name} backend has no tuning service cloudtrain can use",
                                      "run the sweep here: `cloudtrain sweep SPEC` (no --cloud)")

    def submit_sweep(self, plan: "Plan", request: NativeRequest) -> JobRef:
        """With ``capabilities.sweep_jobs``: stage the code, create the tuning job once; its ref has
        ``details["kind"] == "sweep"``, and :meth:`status`, :meth:`logs` and :meth:`cancel` then
        follow the tuning job and its trials."""
        raise NotImplementedError

    def sweep_name(self, plan: "Plan") -> str:
        """The tuning job's name (its id in the store)."""
        return plan.job_name

    # -- following ------------------------------------------------------------------------------

    def status(self, ref: JobRef) -> JobStatus:
        raise NotImplementedError

    def read_logs(self, ref: JobRef, cursor: Any, final: bool) -> tuple[list[str], Any]:
        """The complete log lines after ``cursor`` (None at first) and the new cursor. ``final``:
        the job has ended, so a last line without a newline is complete too."""
        raise NotImplementedError

    def logs(self, ref: JobRef, follow: bool = False) -> Iterator[str]:
        """The job's log lines in order; with ``follow``, until the job ends. The state is read
        before the lines, so no line written before the end is missed."""
        cursor: Any = None
        while True:
            terminal = self.status(ref).state.is_terminal
            if follow and not terminal and not self.capabilities.log_streaming:
                time.sleep(self.poll_seconds)  # no live logs: they are read once the job ended
                continue
            lines, cursor = self.read_logs(ref, cursor, final=terminal)
            yield from lines
            if not follow or terminal:
                return
            time.sleep(self.poll_seconds)

    def cancel(self, ref: JobRef) -> None:
        raise NotImplementedError

    # -- errors ---------------------------------------------------------------------------------

    def translate_error(self, what: str, error: Exception) -> CloudtrainError:
        """An SDK failure as one clear error with a hint; backends map their SDK's errors."""
        return ProviderError(f"{self.name} failed to {what}: {_brief(error)}",
                             "retry; if it persists, check the backend's settings and credentials")

    def call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One SDK call; a failure becomes :meth:`translate_error`'s error (no traceback)."""
        try:
            return func(*args, **kwargs)
        except CloudtrainError:
            raise
        except Exception as error:  # noqa: BLE001 - translated for the user
            raise self.translate_error(what, error) from None


def _brief(error: BaseException) -> str:
    text = " ".join(str(error).split())[:600]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def missing_settings_error(backend: str, missing: list[str], examples: dict[str, str]) -> CloudtrainError:
    """One message naming every missing setting, with where to set them."""
    from cloudtrain.errors import SpecError

    names = ", ".join(f"{backend}.{key}" for key in missing)
    sample = ", ".join(f"{key}: {examples.get(key, '...')}" for key in missing)
    variables = ", ".join(f"CLOUDTRAIN_{backend.upper()}_{key.upper()}" for key in missing)
    verb = "is" if len(missing) == 1 else "are"
    return SpecError(f"{names} {verb} not set",
                     f"set it in the spec, in cloudtrain.yaml ({backend}: {{{sample}}}), or with {variables}")


def secret_source(ref: Any) -> str:
    return next(k for k in SECRET_SOURCES if getattr(ref, k))


def check_capabilities(provider: Provider, plan: "Plan") -> None:
    """Refuse what the backend's :class:`Capabilities` do not list, naming the spec field."""
    caps: Capabilities = provider.capabilities
    spec, name = plan.spec, provider.name
    if plan.spot and not caps.spot:
        raise UnsupportedFeatureError(f"spot.enabled: the {name} backend has no spot capacity", "set spot.enabled: false (--set spot.enabled=false)")
    if plan.nodes > 1 and not caps.multi_node:
        raise UnsupportedFeatureError(f"resources.nodes: the {name} backend runs one node", "set resources.nodes: 1")
    if spec.checkpoint.enabled and not caps.checkpoints:
        raise UnsupportedFeatureError(f"checkpoint.enabled: the {name} backend keeps no checkpoints across restarts",
                                      "set checkpoint.enabled: false")
    if spec.image_for(name) and not caps.container_images:
        raise UnsupportedFeatureError(f"image: the {name} backend does not run container images", "use `framework:` instead of `image:` for this backend")
    for input_name, item in spec.inputs.items():
        if item.scheme() not in caps.input_schemes:
            raise UnsupportedFeatureError(
                f"inputs.{input_name}: {item.uri} is a {item.scheme()}:// location, which the {name} backend cannot read",
                f"it reads {', '.join(s if s == 'local' else s + '://' for s in caps.input_schemes)} inputs; "
                f"override it, e.g. --set inputs.{input_name}=./data",
            )
    for secret_name, ref in spec.secrets.items():
        source = secret_source(ref)
        if source not in caps.secret_sources:
            raise UnsupportedFeatureError(
                f"secrets.{secret_name}: the {name} backend cannot read secrets from {source}",
                f"it reads secrets from: {', '.join(caps.secret_sources)}",
            )


def is_sweep(ref: JobRef) -> bool:
    """Whether ``ref`` is a tuning job (:meth:`Provider.submit_sweep`) rather than one training job."""
    return ref.details.get("kind") == "sweep"
