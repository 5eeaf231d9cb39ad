"""``/opt/ml`` at its documented path for an emulated job: each host's tree bound there privately.

A SageMaker container sees its job at ``/opt/ml`` (``/opt/ml/input/config/hyperparameters.json``,
``/opt/ml/input/data/<channel>``, ``/opt/ml/model``...), and code such as the SageMaker Python
SDK's own driver scripts uses those paths literally. Here every host of a job has its tree under
the emulator's root (``<root>/jobs/<job>/algo-N/opt/ml``); each host's processes run in a private
mount namespace (``unshare --mount``) where that tree is bind-mounted on ``/opt/ml``, so hosts
and jobs running at the same time each see their own, and nothing outside the job sees a change.
A hosts file naming the job's hosts (``algo-1``...) on 127.0.0.1 is bound on ``/etc/hosts`` there
too, as SageMaker's hosts resolve each other.

That needs ``unshare`` and ``mount`` (util-linux) and either root (with the capability to mount)
or user namespaces (``unshare --user --map-root-user``, tried second), and ``/opt/ml`` must exist
as a mount point: as root the emulator creates the empty directory once when it is missing. :func:`unavailable_reason` says why it is not
possible on this machine (checked once per process, by trying it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

MOUNT_POINT = "/opt/ml"
HOSTS_FILE = "/etc/hosts"
#: Runs inside the namespace: $1 the host's tree, $2 the working directory, $3 a hosts file (or ""), then the command.
_BIND_AND_RUN = (f'mount --bind "$1" {MOUNT_POINT} && {{ [ -z "$3" ] || mount --bind "$3" {HOSTS_FILE}; }} '
                 '&& cd "$2" && shift 3 && exec "$@"')
_lock = threading.Lock()
_probed: list[tuple[list[str], str | None]] = []


def _unshare_commands() -> list[list[str]]:
    """The ways to get a private mount namespace, in the order tried: as root, then in a user namespace."""
    private = ["unshare", "--mount", "--propagation", "private"]
    user = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
    return [private, user] if hasattr(os, "geteuid") and os.geteuid() == 0 else [user]


def _probe() -> tuple[list[str], str | None]:
    missing = [tool for tool in ("unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return [], f"{' and '.join(missing)} (util-linux) not found"
    if not os.path.isdir(MOUNT_POINT):
        try:
            os.makedirs(MOUNT_POINT)
        except OSError as error:
            return [], f"{MOUNT_POINT} does not exist and cannot be created as a mount point ({error.strerror})"
    detail = "no output"
    with tempfile.TemporaryDirectory(prefix="cloudtrain-opt-ml-") as tree:
        (Path(tree) / "probe").write_text("ok")
        for prefix in _unshare_commands():
            try:
                result = subprocess.run([*prefix, "sh", "-c", _BIND_AND_RUN, "sh", tree, "/", "", "cat", f"{MOUNT_POINT}/probe"],
                                        capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as error:
                detail = str(error)
                continue
            if result.returncode == 0 and result.stdout == "ok":
                return prefix, None
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return [], f"a private mount namespace is not allowed here (run the emulator as root, or allow user namespaces): {detail}"


def _probe_once() -> tuple[list[str], str | None]:
    with _lock:
        if not _probed:
            _probed.append(_probe())
        return _probed[0]


def unavailable_reason() -> str | None:
    """None when jobs can see ``/opt/ml``; otherwise why not, in a sentence."""
    return _probe_once()[1]


def hosts_file(path: Path, hosts: list[str]) -> Path:
    """Write ``path``: this machine's hosts file plus the job's host names (``algo-1``...) on 127.0.0.1,
    so code that connects to ``algo-1`` (the SageMaker SDK's drivers, ``SM_HOSTS``) reaches it here."""
    try:
        current = Path(HOSTS_FILE).read_text()
    except OSError:
        current = "127.0.0.1 localhost\n"
    path.write_text(current.rstrip("\n") + "\n# the SageMaker emulator's hosts of this job\n127.0.0.1 " + " ".join(hosts) + "\n")
    return path


def bound(argv: list[str], host_tree: Path, cwd: str, hosts: Path | None = None) -> list[str]:
    """``argv`` run with ``host_tree`` on ``/opt/ml`` (and ``hosts`` on ``/etc/hosts`` when given) and
    ``cwd`` as its working directory (a path the job sees). Call only when :func:`unavailable_reason`
    is None."""
    prefix, reason = _probe_once()
    if reason:
        raise RuntimeError(reason)
    return [*prefix, "sh", "-c", _BIND_AND_RUN, "sh", str(host_tree), cwd, str(hosts or ""), *argv]
