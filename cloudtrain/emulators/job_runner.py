"""The one run loop of every emulated training job: :class:`EmulatedJob`.

A job moves through cloud-neutral phases (:class:`Phase`): QUEUED -> PREPARING -> RUNNING ->
FINALIZING -> SUCCEEDED / FAILED / TIMED_OUT, or CANCELLING -> CANCELLED after a cancel, and
INTERRUPTED -> RESTARTING -> RUNNING when a ``preempt`` fault reclaims a preemptible job's capacity
after its first checkpoint. The base class owns that state machine and its rules (a terminal phase
is final; after a cancel the job never goes back to an active phase), runs each attempt's node
commands through :class:`NodeProcesses` (on :class:`cloudtrain.providers.process.Supervisor`),
mirrors checkpoint directories to storage with :class:`DirectoryMirror` while they run, ends an
attempt that runs past its maximum runtime, and keeps each node's last lines for failure messages.

Each cloud's module (:mod:`~cloudtrain.emulators.sagemaker_jobs`, :mod:`~cloudtrain.emulators.vertex_jobs`,
:mod:`~cloudtrain.emulators.azureml_execution`) subclasses it and supplies only its particulars:

- :meth:`EmulatedJob.record_state`: how a phase shows in the cloud's API (its state names, times, errors);
- :meth:`EmulatedJob.prepare` and :meth:`EmulatedJob.node_commands`: laying out code and data, and
  the commands with the cloud's environment contract;
- :meth:`EmulatedJob.write_line` / :meth:`EmulatedJob.note`: writing the job's lines (and the
  emulator's own) where the cloud's log is;
- :meth:`EmulatedJob.mirrored_directories`, :meth:`EmulatedJob.upload_mirrored`,
  :meth:`EmulatedJob.upload_outputs`: storage;
- :meth:`EmulatedJob.max_runtime_seconds`, :meth:`EmulatedJob.preemptible`,
  :meth:`EmulatedJob.failure_message`.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from cloudtrain.emulators.common import Faults
from cloudtrain.providers.process import NodeCommand, Supervisor


class Phase(str, Enum):
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    RESTARTING = "restarting"
    CANCELLING = "cancelling"
    FINALIZING = "finalizing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED, Phase.TIMED_OUT)


#: Phases a job never enters once a cancel was requested.
_NOT_AFTER_CANCEL = (Phase.QUEUED, Phase.PREPARING, Phase.RUNNING, Phase.INTERRUPTED, Phase.RESTARTING, Phase.FINALIZING)


@dataclass(frozen=True)
class Failure:
    """Why a job failed: ``kind`` is ``job`` (its processes failed), ``setup`` (the request or its
    data, see :class:`JobSetupError`) or ``internal`` (an emulator bug)."""

    kind: str
    message: str


class JobSetupError(Exception):
    """A problem with the job's request or data: the job fails (the cloud's user/client error)."""


@dataclass
class JobSettings:
    """What every job takes from its emulator: the faults and timings."""

    faults: Faults
    grace_seconds: float = 10.0
    poll_seconds: float = 0.1


_NODE_PREFIX = re.compile(r"^\[node-(\d+)\] ?(.*)$", re.DOTALL)


#: What every emulated job's processes get unless the job sets it: MLflow's usage telemetry off (the
#: jobs run offline, and with it on, mlflow 3.17's ``autolog()`` can deadlock at start).
OFFLINE_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true"}


class NodeProcesses:
    """One attempt of a job: its node commands under a Supervisor; each output line goes to
    ``on_line(node_index, text)`` without the supervisor's ``[node-N]`` prefix."""

    def __init__(self, run_dir: Path, commands: list[NodeCommand], grace_seconds: float,
                 on_line: Callable[[int, str], None]) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._several = len(commands) > 1
        self._on_line = on_line
        commands = [NodeCommand(argv=c.argv, env={**OFFLINE_ENVIRONMENT, **c.env}, cwd=c.cwd) for c in commands]
        self.supervisor = Supervisor(run_dir, commands, grace_seconds=grace_seconds, on_line=self._line)

    def _line(self, line: str) -> None:
        match = _NODE_PREFIX.match(line) if self._several else None
        self._on_line(int(match.group(1)) if match else 0, match.group(2) if match else line)

    def run(self) -> dict[str, Any]:
        return self.supervisor.run()

    def cancel(self) -> None:
        self.supervisor.cancel()


FileSignature = tuple[int, int]


class DirectoryMirror:
    """Uploads the files of local directories whose content settled (same size and mtime on two
    scans in a row) through ``upload(relative_path, path)``; ``sync(final=True)`` uploads all."""

    def __init__(self, directories: list[Path], upload: Callable[[str, Path], None]) -> None:
        self.directories, self.upload = directories, upload
        self._seen: dict[str, FileSignature] = {}
        self._uploaded: dict[str, FileSignature] = {}
        self.uploads = 0

    def _scan(self) -> dict[str, tuple[FileSignature, Path]]:
        found: dict[str, tuple[FileSignature, Path]] = {}
        for directory in self.directories:
            if not directory.is_dir():
                continue
            for path in sorted(directory.rglob("*")):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if path.is_file():
                    found[path.relative_to(directory).as_posix()] = ((stat.st_size, stat.st_mtime_ns), path)
        return found

    def sync(self, final: bool = False) -> list[str]:
        """Upload what changed since the last upload; returns the relative paths uploaded."""
        found = self._scan()
        done = []
        for relative, (signature, path) in found.items():
            settled = final or self._seen.get(relative) == signature
            if settled and self._uploaded.get(relative) != signature:
                try:
                    self.upload(relative, path)
                except FileNotFoundError:
                    continue
                self._uploaded[relative] = signature
                done.append(relative)
        self._seen = {relative: signature for relative, (signature, _) in found.items()}
        self.uploads += len(done)
        return done


class EmulatedJob:
    """One created job, run in a thread (``start()``) from QUEUED to a terminal phase; see the
    module docstring for what a subclass supplies. ``lock`` guards the phase (and, when the cloud's
    service hands in its own re-entrant lock, the cloud's record of the job)."""

    #: Outcomes that pass through FINALIZING (outputs uploaded while the cloud shows it).
    finalized_outcomes: tuple[Phase, ...] = (Phase.SUCCEEDED, Phase.FAILED, Phase.TIMED_OUT)
    #: The emulator's line in the job's log when its capacity is reclaimed.
    preemption_notice = "cloudtrain-emulator: capacity reclaimed: the job is preempted"
    tail_lines = 40

    def __init__(self, name: str, root: Path, settings: JobSettings, lock: Any = None) -> None:
        self.name, self.root, self.settings = name, root, settings
        self.lock = lock if lock is not None else threading.RLock()
        self.phase = Phase.QUEUED
        self.cancel_requested = False
        self.interruptions = 0
        self.attempts = 0
        self.running_seconds = 0.0
        self.failure: Failure | None = None
        self.run_directory: Path | None = None
        self.tails: dict[int, deque[str]] = {}
        self._nodes: NodeProcesses | None = None
        self._timed_out = False
        self._interrupting = False
        self.thread = threading.Thread(target=self.run, name=f"emulated-job-{name}", daemon=True)

    # -- what a cloud supplies ------------------------------------------------------------------

    def record_state(self, phase: Phase, failure: Failure | None) -> None:
        """Show ``phase`` in the cloud's API (called under :attr:`lock`; ``failure`` with FAILED)."""
        raise NotImplementedError

    def prepare(self, restart: bool) -> None:
        """Lay out code, data and checkpoints (again on fresh capacity when ``restart``); raise
        :class:`JobSetupError` for a problem with the request or its data."""

    def node_commands(self) -> list[NodeCommand]:
        """This attempt's processes, with the cloud's environment contract."""
        raise NotImplementedError

    def write_line(self, node: int, text: str) -> None:
        """One output line of node ``node``, written where the cloud's log is."""
        raise NotImplementedError

    def note(self, text: str) -> None:
        """A line of the emulator's own (preemption, internal errors) in the job's log."""
        self.write_line(0, text)

    def attempt_ended(self) -> None:
        """After each attempt's processes ended (close log files...)."""

    def mirrored_directories(self) -> list[Path]:
        """Local directories mirrored to storage while the job runs (checkpoints...)."""
        return []

    def upload_mirrored(self, relative: str, path: Path) -> None:
        """Upload one settled file of :meth:`mirrored_directories`."""

    def is_checkpoint(self, relative: str) -> bool:
        """Whether a mirrored file is a checkpoint (the first one lets a preemption happen)."""
        return True

    def preemptible(self) -> bool:
        """Whether the job runs on capacity a ``preempt`` fault may reclaim (spot)."""
        return False

    def max_runtime_seconds(self) -> float | None:
        return None

    def failure_message(self, exit_codes: list[int | None], node: int) -> str:
        """The cloud's message for processes that failed; ``node`` is the one that failed first."""
        return f"node {node} exited with status {exit_codes[node] if node < len(exit_codes) else None}: {self.last_error_line(node)}"

    def upload_outputs(self, outcome: Phase) -> None:
        """Upload the model and outputs to the output location, before the terminal phase."""

    # -- state ----------------------------------------------------------------------------------

    def enter(self, phase: Phase, failure: Failure | None = None) -> bool:
        """Move to ``phase`` unless the job ended, or was cancelled and ``phase`` is an active one."""
        with self.lock:
            if self.phase.is_terminal or (self.cancel_requested and phase in _NOT_AFTER_CANCEL):
                return False
            self.phase = phase
            self.record_state(phase, failure)
            return True

    def cancel(self) -> bool:
        """A cancel (stop) request: CANCELLING, SIGTERM to every process, SIGKILL after the grace
        period. False when the job already ended."""
        with self.lock:
            if self.phase.is_terminal:
                return False
            first = not self.cancel_requested
            self.cancel_requested = True
            nodes = self._nodes
            if first:
                self.phase = Phase.CANCELLING
                self.record_state(Phase.CANCELLING, None)
        if nodes is not None:
            nodes.cancel()
        return True

    def start(self) -> "EmulatedJob":
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.enter(Phase.QUEUED)  # the cloud's record may have shown its creation state until now
            self.enter(Phase.PREPARING)
            if not self.cancel_requested:
                self.prepare(restart=False)
            outcome = Phase.CANCELLED
            while not self.cancel_requested:
                self.enter(Phase.RUNNING)
                outcome = self._attempt()
                if outcome is not Phase.INTERRUPTED:
                    break
                self.enter(Phase.INTERRUPTED)
                self.enter(Phase.RESTARTING)
                self.prepare(restart=True)
            if outcome is Phase.INTERRUPTED:  # cancelled while restarting
                outcome = Phase.CANCELLED
            if outcome in self.finalized_outcomes:
                self.enter(Phase.FINALIZING)
            self.upload_outputs(outcome)
            self.enter(outcome, self.failure if outcome is Phase.FAILED else None)
        except JobSetupError as error:
            self.enter(Phase.FAILED, Failure("setup", str(error)))
        except Exception as error:  # an emulator bug: show it where the user looks, and end the job
            for line in traceback.format_exc().splitlines():
                self._safe_note(f"cloudtrain-emulator internal error: {line}")
            self.enter(Phase.FAILED, Failure("internal", f"{type(error).__name__}: {error}"))

    def _safe_note(self, text: str) -> None:
        try:
            self.note(text)
        except Exception:
            pass

    def _line(self, node: int, text: str) -> None:
        self.tails.setdefault(node, deque(maxlen=self.tail_lines)).append(text)
        self.write_line(node, text)

    def _attempt(self) -> Phase:
        commands = self.node_commands()
        self.tails = {index: deque(maxlen=self.tail_lines) for index in range(len(commands))}
        self.run_directory = self.root / ("run" if not self.attempts else f"run-{self.attempts}")
        self.attempts += 1
        nodes = NodeProcesses(self.run_directory, commands, self.settings.grace_seconds, self._line)
        mirror = DirectoryMirror(self.mirrored_directories(), self.upload_mirrored)
        with self.lock:
            self._nodes, cancelled = nodes, self.cancel_requested
        if cancelled:
            nodes.cancel()
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(nodes, mirror, finished), daemon=True)
        watcher.start()
        seconds = self.max_runtime_seconds()
        timer = threading.Timer(seconds, self._time_out, args=(nodes,)) if seconds else None
        if timer:
            timer.daemon = True
            timer.start()
        started = time.monotonic()
        try:
            result = nodes.run()
        finally:
            self.running_seconds += time.monotonic() - started
            finished.set()
            watcher.join()
            if timer:
                timer.cancel()
            with self.lock:
                self._nodes = None
            self.attempt_ended()
        mirror.sync(final=True)
        if self._interrupting:
            self._interrupting = False
            return Phase.INTERRUPTED
        if self.cancel_requested:
            return Phase.CANCELLED
        if self._timed_out:
            return Phase.TIMED_OUT
        if result.get("state") == "SUCCEEDED":
            return Phase.SUCCEEDED
        codes = result.get("exit_codes") or [result.get("exit_code")]
        self.failure = Failure("job", self.failure_message(codes, self.failing_node(codes)))
        return Phase.FAILED

    def _watch(self, nodes: NodeProcesses, mirror: DirectoryMirror, finished: threading.Event) -> None:
        while not finished.wait(self.settings.poll_seconds):
            try:
                uploaded = mirror.sync()
            except Exception as error:  # a storage hiccup: try again on the next round
                self._safe_note(f"cloudtrain-emulator: mirroring to storage failed: {error}")
                continue
            if (any(self.is_checkpoint(u) for u in uploaded) and self.preemptible() and not self.interruptions
                    and not self.cancel_requested and self.settings.faults.take_preemption(self.name)):
                self.interruptions += 1
                self._interrupting = True
                self.note(self.preemption_notice)
                nodes.cancel()
                return

    def _time_out(self, nodes: NodeProcesses) -> None:
        self._timed_out = True
        nodes.cancel()

    # -- helpers for failure messages -------------------------------------------------------------

    @staticmethod
    def failing_node(exit_codes: list[int | None]) -> int:
        """The node that failed on its own (the others were ended because one failed)."""
        failed = [i for i, code in enumerate(exit_codes) if code not in (0, None)]
        own = [i for i in failed if (exit_codes[i] or 0) > 0] or failed or [0]
        return own[0]

    def last_error_line(self, node: int) -> str:
        """The node's last line naming an Error or Exception, else its last line ('' if none)."""
        tail = [line for line in self.tails.get(node, ()) if line.strip()]
        line = next((l for l in reversed(tail) if "Error" in l or "Exception" in l), tail[-1] if tail else "")
        return line.strip()
