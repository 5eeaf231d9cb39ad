"""A supervised run directory, and what other processes read from it or do to it: its status, its
log, whether its supervisor still runs, and cancelling it (the local backend's ``status``,
``read_logs`` and ``cancel``, and a plugin's that runs jobs the same way).

A run directory holds ``request.json`` (what to run: one command per node), ``logs/job.log``
(merged stdout and stderr of every process, line by line, prefixed ``[node-N]`` when there are
several nodes) and ``status.json`` (state, pids, exit code, timestamps), written atomically. The
process that runs the job and writes them is the supervisor, :mod:`cloudtrain.providers.process`.

While it runs, the supervisor holds an exclusive lock on ``supervisor.lock`` in the run directory
(released by the operating system however it ends). Whether a job's supervisor is alive is read
from that lock, not from its pid alone, which the system may have given to another process since;
both sides of that lock are here.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

LOCK_NAME = "supervisor.lock"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"state": "PENDING"}


def hold_supervisor_lock(run_dir: Path) -> int:
    """Take the run directory's supervisor lock; it is held until the returned descriptor closes
    (or the process ends). Locked under a temporary name, then moved into place, so that a lock
    file that exists is never seen unlocked while its supervisor starts."""
    import fcntl

    tmp = run_dir / f".{LOCK_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o644)  # not inherited by the job's processes
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(tmp, run_dir / LOCK_NAME)
    return fd


def supervisor_alive(run_dir: Path, pid: int | None) -> bool:
    """Whether the supervisor of ``run_dir`` still runs: its lock is held. Before it has taken the
    lock (just started, or a run directory of an older version) the pid is all there is."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return pid_alive(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock, if it was taken
    return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def supervisor_pid(run_dir: Path, data: dict[str, Any] | None = None) -> int | None:
    """The pid of the run directory's supervisor, from its status or its pid file."""
    data = read_status(run_dir) if data is None else data
    if data.get("supervisor_pid"):
        return int(data["supervisor_pid"])
    try:
        return int((run_dir / "supervisor.pid").read_text())
    except (OSError, ValueError):
        return None


def run_status(run_dir: Path, model_uri: Callable[[Path], str] = str) -> Any:
    """The :class:`~cloudtrain.providers.base.JobStatus` of a supervised run directory (a
    supervisor that died without a result is FAILED); ``model_uri`` names the model directory."""
    from datetime import datetime

    from cloudtrain.providers.base import JobState, JobStatus

    data = read_status(run_dir)
    state, message = JobState(data.get("state", "PENDING")), data.get("message")
    pid = supervisor_pid(run_dir, data)
    if not state.is_terminal and pid and not supervisor_alive(run_dir, pid):
        data = read_status(run_dir)  # it may have finished between the two reads
        state, message = JobState(data.get("state", "PENDING")), data.get("message")
        if not state.is_terminal:
            state, message = JobState.FAILED, "the supervisor process ended without recording a result"
    model_dir = run_dir / "model"
    parse = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    return JobStatus(state=state, native_state=data.get("state", "PENDING"), message=message,
                     started_at=parse(data.get("started_at")), ended_at=parse(data.get("ended_at")),
                     model_uri=model_uri(model_dir) if model_dir.is_dir() and any(model_dir.iterdir()) else None,
                     exit_code=data.get("exit_code"))


def read_new_lines(path: Path, position: int | None, final: bool) -> tuple[list[str], int]:
    """The complete lines of ``path`` after byte ``position`` (and a last partial one when
    ``final``), with the new position."""
    position, lines = position or 0, []
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as handle:
            handle.seek(position)
            while True:
                line = handle.readline()
                if not line.endswith("\n") and not (final and line):
                    break
                position = handle.tell()
                lines.append(line.rstrip("\n"))
    return lines, position


def cancel_run(run_dir: Path) -> None:
    """Stop a supervised run: SIGTERM to a live supervisor (never to a process that merely
    inherited its pid), else record it CANCELLED."""
    data = read_status(run_dir)
    from cloudtrain.providers.base import JobState

    if JobState(data.get("state", "PENDING")).is_terminal:
        return
    pid = supervisor_pid(run_dir, data)
    if pid and _signalable(run_dir, pid, data):
        os.kill(pid, signal.SIGTERM)
        return
    # never started, still starting (a SIGTERM would kill it before it can end the job cleanly: it
    # reads this when it holds its lock, and runs nothing), or died before recording anything
    write_json_atomic(run_dir / "status.json", {**data, "state": "CANCELLED", "message": "cancelled by the user"})
    if pid and _signalable(run_dir, pid, read_status(run_dir)):  # it took its lock meanwhile, and may have started
        os.kill(pid, signal.SIGTERM)


def _signalable(run_dir: Path, pid: int, data: dict[str, Any]) -> bool:
    """Whether the supervisor runs with its cancel handlers set: it holds its lock (it takes it
    after setting them), or, in a run directory without a lock (an older version), it has recorded
    that it runs."""
    if (run_dir / LOCK_NAME).exists():
        return supervisor_alive(run_dir, pid)
    return data.get("state") not in (None, "PENDING", "CANCELLED") and pid_alive(pid)
