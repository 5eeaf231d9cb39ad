"""What a conformance-suite backend provides (see conftest.py for how backends are found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Backend:
    name: str
    runner: Any
    overrides: list[str] = field(default_factory=list)  # --set overrides that point a spec at this backend
    emulator: Any = None
    created_jobs: Callable[[], int] | None = None  # how many jobs exist on the (emulated) cloud
    inject: Callable[[str, int], None] | None = None  # fault name ("throttle", "server_error", "drop_after_create"), times
    unsupported: tuple[list[str], str] = ([], "")  # overrides asking for what the backend refuses, and the message's start
