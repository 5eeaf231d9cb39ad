"""The supervisor: the process that runs one job's processes and records what happened, the engine
of the local executor, reused by the emulators (which run jobs "on the cloud" the same way).
``python -m cloudtrain.providers.process RUN_DIR`` is the detached supervisor of a submitted job;
``cloudtrain run`` runs a :class:`Supervisor` in its own process.

It reads the job from the run directory's ``request.json`` and keeps its ``status.json`` and
``logs/job.log`` up to date; the run directory's files, and reading or cancelling a run from
another process, are :mod:`cloudtrain.providers.run_directory`'s.

The supervisor starts each process in its own session (process group), so a cancel reaches the
whole tree (torchrun and its workers) and the user's Ctrl-C reaches only the supervisor, which then
ends the job cleanly: SIGTERM to every group, a grace period, then SIGKILL. The job's exit codes
decide SUCCEEDED or FAILED; a cancel records CANCELLED.

Each node process is asked (Linux ``prctl(PR_SET_PDEATHSIG)``) to receive SIGTERM when its
supervisor dies, however it dies (SIGKILL included), so a job never outlives the process that
records it; on other systems an orphaned job is found by ``status`` (its supervisor's lock is free)
and recorded FAILED.

Secret values are read from the supervisor's own environment when the processes start; they are
never written to the run directory.

While it runs, the supervisor holds the run directory's ``supervisor.lock`` (taken after its cancel
handlers are set), from which other processes read whether it is alive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from cloudtrain.providers.run_directory import hold_supervisor_lock, read_status, write_json_atomic
from cloudtrain.runtime.children import die_with_parent
from cloudtrain.runtime.context import matched_metrics, metric_record

DEFAULT_GRACE_SECONDS = 10.0
FAILURE_TAIL_LINES = 20


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class NodeCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for rendezvous and emulator servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def failure_summary(log_file: Path, exit_codes: list[int | None]) -> str:
    """The exit codes and the last meaningful log lines (usually the traceback's last line)."""
    try:
        lines = [l for l in log_file.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        lines = []
    tail = lines[-FAILURE_TAIL_LINES:]
    error_line = next((l for l in reversed(tail) if "Error" in l or "Exception" in l), tail[-1] if tail else "")
    codes = ", ".join(str(c) for c in exit_codes)
    return f"exit code {codes}" + (f": {error_line.strip()}" if error_line else "")


class Supervisor:
    """Runs the node commands of one job and keeps ``status.json`` and ``logs/job.log`` up to date."""

    def __init__(self, run_dir: Path, commands: list[NodeCommand], grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 on_line: Callable[[str], None] | None = None, metric_patterns: list[tuple[str, str]] = (),
                 max_runtime_seconds: float | None = None) -> None:
        self.run_dir = Path(run_dir)
        #: the spec's max_runtime: a job still running then is stopped (SIGTERM, grace, SIGKILL) and FAILED, as a cloud ends it
        self.max_runtime_seconds = max_runtime_seconds
        self.ran_out = threading.Event()
        self.commands = commands
        self.grace_seconds = grace_seconds
        self.on_line = on_line
        #: (metric name, regex): values found in the first node's output are recorded in metrics.jsonl,
        #: as the runtime's log_metric records them (the spec's metrics with a regex, which a cloud reads from the logs)
        self.metric_patterns = [(name, re.compile(regex)) for name, regex in metric_patterns]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._log_lock = threading.Lock()
        self._status: dict[str, Any] = read_status(self.run_dir)

    def _set_status(self, **changes: Any) -> None:
        self._status.update(changes)
        write_json_atomic(self.run_dir / "status.json", self._status)

    def _pump(self, process: subprocess.Popen[bytes], prefix: str, log: Any, scan: bool = False) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\n")
            line = prefix + text
            with self._log_lock:
                log.write(line + "\n")
                log.flush()
                if scan:
                    self._record_metrics(text)
            if self.on_line is not None:
                self.on_line(line)

    def _record_metrics(self, text: str) -> None:
        for name, value in matched_metrics(self.metric_patterns, text):
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(metric_record(name, value)) + "\n")

    def cancel(self) -> None:
        """End the job: SIGTERM to every process group, SIGKILL after the grace period."""
        if self.cancelled.is_set() or self.finished.is_set():
            return
        self.cancelled.set()
        self._set_status(state="CANCELLING")
        self._signal_all(signal.SIGTERM)
        killer = threading.Timer(self.grace_seconds, self._signal_all, args=(signal.SIGKILL,))
        killer.daemon = True
        killer.start()

    def _signal_all(self, sig: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass

    def run(self) -> dict[str, Any]:
        """Start every node's process, wait for all, and return the final status."""
        lock = hold_supervisor_lock(self.run_dir)
        try:
            return self._run()
        finally:
            os.close(lock)  # after the final status is written

    def _run(self) -> dict[str, Any]:
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = logs_dir / "job.log"
        pumps = []
        started = time.monotonic()
        if read_status(self.run_dir).get("state") == "CANCELLED":  # cancelled before this supervisor held the lock
            self.cancelled.set()
        with open(log_path, "a", encoding="utf-8") as log:
            self._set_status(state="CANCELLING" if self.cancelled.is_set() else "RUNNING", supervisor_pid=os.getpid(),
                             started_at=now_iso())
            try:
                for index, command in enumerate(self.commands):
                    if self.cancelled.is_set():
                        break
                    env = with_interpreter_on_path({**os.environ, **command.env})
                    process = subprocess.Popen(command.argv, cwd=command.cwd, env=env, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                               preexec_fn=die_with_parent(signal.SIGTERM))
                    self.processes.append(process)
                    if self.cancelled.is_set():  # a cancel that came while it started
                        self._signal_all(signal.SIGTERM)
                    prefix = f"[node-{index}] " if len(self.commands) > 1 else ""
                    pump = threading.Thread(target=self._pump, args=(process, prefix, log, index == 0 and bool(self.metric_patterns)),
                                            daemon=True)
                    pump.start()
                    pumps.append(pump)
                self._set_status(pids=[p.pid for p in self.processes])
                limit = threading.Timer(self.max_runtime_seconds, self._run_out) if self.max_runtime_seconds else None
                if limit is not None:
                    limit.daemon = True
                    limit.start()
                codes = self._wait_all()
                if limit is not None:
                    limit.cancel()
            except OSError as error:
                log.write(f"cloudtrain: could not start the job: {error}\n")
                self._signal_all(signal.SIGKILL)
                codes = [None]
            for pump in pumps:
                pump.join()
        if self.cancelled.is_set():
            state, message = "CANCELLED", "cancelled by the user"
        elif self.ran_out.is_set():
            from cloudtrain.spec import format_duration

            limit = format_duration(timedelta(seconds=int(self.max_runtime_seconds or 0)))
            state, message = "FAILED", f"stopped at max_runtime ({limit}): the job was still running, as a cloud would stop it"
        elif codes and all(code == 0 for code in codes):
            state, message = "SUCCEEDED", None
        else:
            state, message = "FAILED", failure_summary(log_path, codes)
        self.finished.set()
        nonzero = [c for c in codes if c not in (0, None)]
        self._set_status(state=state, message=message, exit_code=nonzero[0] if nonzero else (codes[0] if codes else None),
                         exit_codes=codes, ended_at=now_iso(), duration_seconds=round(time.monotonic() - started, 3))
        return self._status

    def _run_out(self) -> None:
        """max_runtime has passed: end every process (SIGTERM, then SIGKILL after the grace period)."""
        if self.cancelled.is_set() or self.finished.is_set() or all(p.poll() is not None for p in self.processes):
            return  # the job ended on its own (the timer can fire while its last process exits)
        self.ran_out.set()
        self._signal_all(signal.SIGTERM)
        killer = threading.Timer(self.grace_seconds, self._signal_all, args=(signal.SIGKILL,))
        killer.daemon = True
        killer.start()

    def _wait_all(self) -> list[int | None]:
        """Wait for every process (one blocking waiter thread each, so an exit is seen at once);
        if one node fails, the others are ended, as a cloud would."""
        import queue

        exited: "queue.Queue[subprocess.Popen[bytes]]" = queue.Queue()
        for process in self.processes:
            threading.Thread(target=lambda p=process: (p.wait(), exited.put(p)), daemon=True).start()
        for remaining in range(len(self.processes), 0, -1):
            process = exited.get()
            if process.returncode != 0 and remaining > 1 and not self.cancelled.is_set():
                self._signal_all(signal.SIGTERM)
                killer = threading.Timer(self.grace_seconds, self._signal_all, args=(signal.SIGKILL,))
                killer.daemon = True
                killer.start()
        return [p.returncode for p in self.processes]


def install_cancel_handlers(supervisor: Supervisor) -> Callable[[], None]:
    """SIGTERM (``cloudtrain cancel``) and SIGINT (Ctrl-C) end the job cleanly; returns a function
    that puts the previous handlers back. The handler does no I/O itself: a thread does the cancel."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: Any) -> None:
        threading.Thread(target=supervisor.cancel, daemon=True).start()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def load_commands(run_dir: Path, secret_env: dict[str, str]) -> tuple[list[NodeCommand], float]:
    """The node commands of ``request.json``, with secrets (names -> source variables) filled in."""
    request = json.loads((run_dir / "request.json").read_text())
    secrets = {name: os.environ.get(source, "") for name, source in secret_env.items()}
    commands = [NodeCommand(argv=n["argv"], env={**n["env"], **secrets}, cwd=n["cwd"]) for n in request["nodes"]]
    return commands, float(request.get("grace_seconds", DEFAULT_GRACE_SECONDS))


def with_interpreter_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this Python's directory first on ``PATH`` (as a cloud image has its Python), so
    that ``python`` in a job's shell command is the interpreter cloudtrain runs with, with its packages."""
    here = os.path.dirname(sys.executable)
    entries = env.get("PATH", os.defpath).split(os.pathsep)
    if entries[:1] != [here]:
        env = {**env, "PATH": os.pathsep.join([here, *entries])}
    return env


def max_runtime(request: dict[str, Any]) -> float | None:
    """The job's max_runtime in seconds, from a local request (None: no limit)."""
    value = request.get("max_runtime_seconds")
    return float(value) if value else None


def metric_patterns(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The (name, regex) of the spec's metrics that a regex finds in the output, from a local request."""
    return [(item["name"], item["regex"]) for item in request.get("metric_patterns", [])]


def main(argv: list[str] | None = None) -> int:
    """``python -m cloudtrain.providers.process RUN_DIR``: the detached supervisor of a submitted local job."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    run_dir = Path(args[0])
    request = json.loads((run_dir / "request.json").read_text())
    commands, grace = load_commands(run_dir, request.get("secret_env", {}))
    supervisor = Supervisor(run_dir, commands, grace_seconds=grace, metric_patterns=metric_patterns(request),
                            max_runtime_seconds=max_runtime(request))
    install_cancel_handlers(supervisor)
    status = supervisor.run()
    return 0 if status["state"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())

