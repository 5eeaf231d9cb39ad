"""Child processes that do not outlive their parent. Stdlib only: the runtime layer (the entry
shim's relay uses it in cloud jobs, the local executor's supervisor on this machine)."""

from __future__ import annotations

import os
import sys
from typing import Callable


def die_with_parent(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send ``signum`` to the child when this process dies
    (Linux), or None elsewhere. The libc function is looked up here, in the parent: the child only
    calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(1, signum)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call: nobody will send it
            os.kill(os.getpid(), signum)

    return set_death_signal
