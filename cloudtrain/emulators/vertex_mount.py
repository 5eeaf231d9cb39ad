"""``/gcs/<bucket>/...`` for an emulated Vertex AI replica, the path Google documents for its Cloud
Storage FUSE mount.

The job's mount directory (``<job root>/gcs``, also in ``CLOUDTRAIN_GCS_MOUNT``) is bind-mounted on
``/gcs`` in a private mount namespace of each replica (``unshare --mount`` + ``mount --bind``), so
the replica sees Google's path while the machine's own ``/gcs`` is untouched; that needs root (or
``CAP_SYS_ADMIN``) and util-linux's ``unshare``. The mount point must exist: as root the emulator
creates an empty ``/gcs`` directory once if there is none. Where this is not possible, replicas run
without ``/gcs`` and the job's log says so; ``CLOUDTRAIN_GCS_MOUNT`` still points at the same files.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

MOUNT_POINT = Path("/gcs")
_SCRIPT = 'mount --bind "$0" ' + str(MOUNT_POINT) + ' && exec "$@"'


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why ``/gcs`` cannot be mounted for replicas on this machine, or None when it can."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "the emulator does not run as root (a private mount namespace needs it)"
    try:
        MOUNT_POINT.mkdir(exist_ok=True)
    except OSError as error:
        return f"{MOUNT_POINT} cannot be created: {error.strerror}"
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", _SCRIPT, "/", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"a bind mount in a private mount namespace is refused here ({probe.stderr.strip() or probe.returncode})"
    return None


def with_gcs_mount(argv: list[str], mount: Path) -> list[str]:
    """``argv`` run with ``mount`` on ``/gcs`` (call only when :func:`unavailable_reason` is None)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _SCRIPT, str(mount), *argv]
