"""The provider protocol: what every execution backend (local, SageMaker, Azure ML, Vertex AI) implements.

A provider turns a :class:`~cloudtrain.plan.Plan` into its own request and follows the job it
created. The flow, and who does what:

``check(plan)``
    Refuse, before anything runs, what this backend cannot do (``UnsupportedFeatureError`` with one
    clear message naming the spec field). Pure.
``render(plan) -> NativeRequest``
    The exact request that :meth:`submit` will send, in the provider's own format (boto3 kwargs,
    Azure ML job YAML, Vertex REST JSON, the local command line). Pure: no network, no upload, no
    mutation. ``submit --dry-run`` prints it; tests compare it with golden files.
``submit(plan, request) -> JobRef``
    Stage code and local inputs, send the request, and return a reference. Idempotent: the job's
    name (and, where the cloud assigns ids, the plan's submission token) identify the submission,
    so calling ``submit`` again for the same plan finds the job created before instead of creating
    a second one. The runner records the job in the store *before* calling ``submit``.
``status(ref) -> JobStatus``
    The job's state mapped to one neutral :class:`JobState` through a table in each module; the
    cloud's own state, and a failure reason, are kept beside it.
``logs(ref, follow) -> Iterator[str]``
    The job's log lines in order; with ``follow`` it keeps reading until the job ends.
``cancel(ref)``
    Ask the backend to stop the job; the state goes through CANCELLING to CANCELLED.

Each provider creates its SDK client in one place and accepts one handed in (``client=``), so
tests and the emulators exercise the real SDK code paths without patching. Cloud SDKs are imported
inside functions, never at module import.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol, runtime_checkable

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
    """What a provider supports; anything else is refused at plan time."""

    spot: bool = False
    multi_node: bool = False
    checkpoints: bool = True
    log_streaming: bool = True
    sweeps: bool = False
    container_images: bool = True
    input_schemes: tuple[str, ...] = ("local",)
    secret_sources: tuple[str, ...] = ("env",)


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


@runtime_checkable
class Provider(Protocol):
    """The contract each module in ``cloudtrain.providers`` implements (see the module docstring)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def check(self, plan: "Plan") -> None: ...

    def render(self, plan: "Plan") -> NativeRequest: ...

    def submit(self, plan: "Plan", request: NativeRequest) -> JobRef: ...

    def status(self, ref: JobRef) -> JobStatus: ...

    def logs(self, ref: JobRef, follow: bool = False) -> Iterator[str]: ...

    def cancel(self, ref: JobRef) -> None: ...


def check_capabilities(provider: Any, plan: "Plan") -> None:
    """The checks every provider shares: refuse spot, multi-node, images, input schemes and secret
    sources that its :class:`Capabilities` do not list."""
    from cloudtrain.errors import UnsupportedFeatureError

    caps: Capabilities = provider.capabilities
    spec, name = plan.spec, provider.name
    if spec.spot.enabled and not caps.spot:
        raise UnsupportedFeatureError(f"spot.enabled: the {name} backend has no spot capacity", "set spot.enabled: false (--set spot.enabled=false)")
    if spec.resources.nodes > 1 and not caps.multi_node:
        raise UnsupportedFeatureError(f"resources.nodes: the {name} backend runs one node", "set resources.nodes: 1")
    if spec.image and not caps.container_images:
        raise UnsupportedFeatureError(f"image: the {name} backend does not run container images", "use `framework:` instead of `image:` for this backend")
    for input_name, item in spec.inputs.items():
        if item.scheme() not in caps.input_schemes:
            raise UnsupportedFeatureError(
                f"inputs.{input_name}: {item.uri} is a {item.scheme()}:// location, which the {name} backend cannot read",
                f"it reads {', '.join(s if s == 'local' else s + '://' for s in caps.input_schemes)} inputs; "
                f"override it, e.g. --set inputs.{input_name}=./data",
            )
    for secret_name, ref in spec.secrets.items():
        source = next(k for k in ("env", "aws_secret", "azure_key_vault", "gcp_secret") if getattr(ref, k))
        if source not in caps.secret_sources:
            raise UnsupportedFeatureError(
                f"secrets.{secret_name}: the {name} backend cannot read secrets from {source}",
                f"it reads secrets from: {', '.join(caps.secret_sources)}",
            )
