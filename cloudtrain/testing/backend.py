"""What the conformance suite is handed about the backend under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from cloudtrain.providers.base import NativeRequest, Provider

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.providers.base import JobRef
    from cloudtrain.runner import Runner


@dataclass
class Backend:
    """The backend under test, as the ``backend`` fixture yields it."""

    name: str  # the registry name: ``--cloud`` and the spec section
    runner: "Runner"  # a Runner whose provider for ``name`` is the one under test (and its own store)
    overrides: list[str] = field(default_factory=list)  # --set overrides that point a spec at this backend
    emulator: Any = None  # the emulator object, for the backend's own tests
    created_jobs: Callable[[], int] | None = None  # how many jobs exist on the (emulated) cloud
    inject: Callable[[str, int], None] | None = None  # fault ("throttle", "server_error", "drop_after_create"), times
    unsupported: tuple[list[str], str] | None = None  # overrides asking for what the backend refuses, the message's start
    #: the fault matrix: submit step ("upload", "create", "status") -> the emulator's operation pattern
    #: for it, with ``faults`` (a :class:`cloudtrain.emulators.common.Faults`) to add rules to
    fault_steps: dict[str, str] = field(default_factory=dict)
    faults: Any = None

    @property
    def provider(self) -> Provider:
        return self.runner.provider(self.name)


class InterruptedSubmission(Provider):
    """The backend under test, with its submission cut short as by the user's Ctrl-C (or a crash)
    before the runner recorded the answer: after the backend's create call (``reached_the_cloud``),
    or before it was sent. Only what :meth:`Runner.submit` calls is delegated (render, submit)."""

    def __init__(self, backend_provider: Provider, reached_the_cloud: bool) -> None:
        self.backend_provider = backend_provider
        self.reached_the_cloud = reached_the_cloud

    @property  # type: ignore[override]
    def name(self) -> str:  # type: ignore[override]
        return self.backend_provider.name

    def render(self, plan: "Plan") -> NativeRequest:
        return self.backend_provider.render(plan)

    def submit(self, plan: "Plan", request: NativeRequest) -> "JobRef":
        if self.reached_the_cloud:
            self.backend_provider.submit(plan, request)
        raise KeyboardInterrupt
