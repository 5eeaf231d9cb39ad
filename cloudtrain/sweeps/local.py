"""Local sweeps: Optuna proposes trials, each one a recorded local-executor job.

Trials run ``max_parallel`` at a time as background local jobs (``Runner.submit`` on the local
backend), polled from this one thread. Each new value of the objective the trial reports (to
``context().log_metric`` or as a regex metric in ``metrics.jsonl``, to cloudml-hypertune as a Vertex
AI script does, or to MLflow as an Azure ML script does: :mod:`cloudtrain.sweeps.metrics`) is
reported to its Optuna trial (step = the value's ordinal, i.e. the epoch for a script that logs
once per epoch); when the pruner says so (``early_stopping: median`` ->
``MedianPruner``, ``hyperband`` -> ``HyperbandPruner``), the trial's job is cancelled
(``Runner.cancel``) and the trial marked PRUNED. A trial's value is the last value of the
objective it logged (as SageMaker and Vertex take the final value); a job that ends without one
fails its trial, and when a trial's job succeeded without it while no trial has logged it, the
sweep stops (its note says so): the objective's name or the way it is logged is wrong. A trial is
a job like any other: it is stopped at the spec's ``max_runtime``.

The study is ``$CLOUDTRAIN_HOME/sweeps/<spec name>.db`` (SQLite), study name ``<spec name>``.
Running the same sweep again continues it until ``max_trials`` trials have ended (COMPLETE,
PRUNED or FAIL); trials an interruption cut short (Ctrl-C, a killed process) are marked FAIL with
the user attribute ``interrupted`` when the sweep is next run, their jobs cancelled, and they do
not count: their values are enqueued (``study.enqueue_trial``), so the next trials run them again
(``rerun_of`` names the trial cut short) before the sampler proposes new ones. A resumed sweep
refuses a spec whose search space or objective changed (``new=True`` starts a new study in the same
file, renaming the old one aside).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from cloudtrain.errors import CloudtrainError, UsageError
from cloudtrain.sweeps.bounds import SpendTracker, check_sweep_budget
from cloudtrain.sweeps.metrics import MetricTail
from cloudtrain.sweeps.space import distributions, grid, require_sweep, trial_loaded, without_sweep

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.runner import Runner
    from cloudtrain.specfile import LoadedSpec


def study_path(name: str) -> Path:
    from cloudtrain.paths import home_dir

    return home_dir() / "sweeps" / f"{name}.db"


@dataclass
class RunningTrial:
    trial: Any  # optuna.Trial
    job_id: str
    tail: MetricTail
    started: float


@dataclass
class SweepProgress:
    """What a display shows: counts and the best trial so far."""

    total: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed


def sampler_for(sweep: Any, seed: int | None) -> Any:
    import optuna

    if sweep.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.algorithm == "grid":
        return optuna.samplers.GridSampler(grid(sweep), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(2, sweep.max_trials // 4)))


def pruner_for(sweep: Any) -> Any:
    import optuna

    if sweep.early_stopping == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if sweep.early_stopping == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def _space_signature(sweep: Any) -> str:
    import json

    return json.dumps({"objective": sweep.objective.model_dump(), "parameters": {k: v.model_dump() for k, v in sweep.parameters.items()},
                       "algorithm": sweep.algorithm}, sort_keys=True, default=str)


class LocalSweep:
    """One sweep of a spec on this machine (see the module docstring)."""

    def __init__(self, loaded: "LoadedSpec", runner: "Runner", *, seed: int | None = None, new: bool = False,
                 poll_seconds: float = 0.2, study_name: str | None = None, storage_path: Path | None = None) -> None:
        import optuna

        self.loaded, self.runner = loaded, runner
        self.sweep = require_sweep(loaded.spec)
        self.name = study_name or loaded.spec.name
        self.path = storage_path or study_path(self.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.poll_seconds = poll_seconds
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{self.path}", engine_kwargs={"connect_args": {"timeout": 30}})
        if new:
            self._set_aside(storage)
        self.study = optuna.create_study(storage=storage, study_name=self.name, load_if_exists=True,
                                         direction=self.sweep.objective.goal, sampler=sampler_for(self.sweep, seed),
                                         pruner=pruner_for(self.sweep))
        signature = self.study.user_attrs.get("space")
        if signature is None:
            self.study.set_user_attr("space", _space_signature(self.sweep))
            self.study.set_user_attr("spec", loaded.spec.name)
            self.study.set_user_attr("metric", self.sweep.objective.metric)
        elif signature != _space_signature(self.sweep):
            raise UsageError(f"the sweep {self.name} in {self.path} was started with another objective, algorithm or parameters",
                             "run it with the spec it was started with, or start afresh with --new")
        self.bound = check_sweep_budget(self.sweep, None)
        budget = self.sweep.budget.max_usd if self.sweep.budget else None
        self.spend = SpendTracker(budget, self.bound.per_trial_usd or 0.0)
        self.running: dict[int, RunningTrial] = {}
        self.note: str | None = None
        self.ended_here: set[int] = set()  # the trials that ended in this process (not an earlier run's)
        self.objective_seen = False  # some trial has reported the objective

    def _set_aside(self, storage: Any) -> None:
        import optuna

        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if self.name in names:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            study_id = storage.get_study_id_from_name(self.name)
            # Optuna has no rename: copy aside, then delete
            optuna.copy_study(from_study_name=self.name, from_storage=storage, to_storage=storage,
                              to_study_name=f"{self.name}-before-{stamp}")
            storage.delete_study(study_id)

    # -- counting ---------------------------------------------------------------------------------

    def _ended(self) -> list[Any]:
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        return [t for t in self.study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("interrupted")]

    def progress(self) -> SweepProgress:
        import optuna

        S = optuna.trial.TrialState
        ended = self._ended()
        progress = SweepProgress(total=self.sweep.max_trials, running=len(self.running),
                                 complete=sum(t.state == S.COMPLETE for t in ended), pruned=sum(t.state == S.PRUNED for t in ended),
                                 failed=sum(t.state == S.FAIL for t in ended))
        if progress.complete:
            best = self.study.best_trial
            progress.best_value, progress.best_params = best.value, dict(best.params)
        return progress

    def _recover_interrupted(self) -> None:
        """Trials left RUNNING by an interrupted sweep: their jobs cancelled, the trials failed as interrupted."""
        import optuna

        for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            job_id = frozen.user_attrs.get("job_id")
            if job_id:
                self._cancel_quietly(job_id)
            self.study._storage.set_trial_user_attr(frozen._trial_id, "interrupted", True)
            self.study.tell(frozen.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        trials = self.study.get_trials(deepcopy=False)
        again = {t.user_attrs.get("rerun_of") for t in trials}
        for frozen in trials:
            if frozen.state == optuna.trial.TrialState.FAIL and frozen.user_attrs.get("interrupted") and frozen.number not in again:
                self.study.enqueue_trial(dict(frozen.params), user_attrs={"rerun_of": frozen.number})

    def _cancel_quietly(self, job_id: str) -> None:
        try:
            self.runner.cancel(job_id)
        except CloudtrainError:
            pass  # it had ended, or its run directory is gone

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[SweepProgress], None] | None = None,
            on_trial_end: Callable[[Any, SweepProgress], None] | None = None) -> SweepProgress:
        """Run trials until ``max_trials`` have ended (this and earlier runs together); returns the
        final progress. ``on_trial_end(frozen_trial, progress)`` is called as each trial ends."""
        self._recover_interrupted()
        try:
            while True:
                progress = self.progress()
                launched = False
                while (len(self.running) < self.sweep.max_parallel
                       and progress.done + len(self.running) < self.sweep.max_trials and not self._grid_exhausted()):
                    if not self.spend.can_launch(len(self.running)):
                        self.note = "stopped launching trials: the next one could take the sweep over sweep.budget.max_usd"
                        break
                    self._launch()
                    launched = True
                if not self.running:
                    break
                for number in list(self.running):
                    ended = self._poll(self.running[number])
                    if ended is not None:
                        del self.running[number]
                        if on_trial_end is not None:
                            on_trial_end(ended, self.progress())
                if self._objective_never_logged() or self._every_trial_failing():
                    self._interrupt()  # the running trials would not log it either; a run after a fix retries them
                    break
                if on_progress is not None:
                    on_progress(self.progress())
                if not launched:
                    time.sleep(self.poll_seconds)
        except BaseException:
            self._interrupt()
            raise
        final = self.progress()
        final.note = self.note
        if on_progress is not None:
            on_progress(final)
        return final

    def _objective_never_logged(self) -> bool:
        """A trial's job succeeded without logging the objective while no trial has logged it: the
        metric's name (or the way it is logged) is wrong, and every trial would end the same way."""
        import optuna

        if self.objective_seen or not self.ended_here:
            return False
        if any(running.tail.values for running in self.running.values()) or any(
                t.intermediate_values or t.state == optuna.trial.TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
            self.objective_seen = True
            return False
        for trial in self._ended():
            if trial.number in self.ended_here and trial.user_attrs.get("job_state") == "SUCCEEDED":
                metric = self.sweep.objective.metric
                logged = self._logged_metrics(trial.user_attrs.get("job_id"))
                what = f" (it logged {', '.join(logged)})" if logged else " (it logged no metric)"
                self.note = (f"stopped: trial {trial.number} ran to its end without logging {metric}{what}, so no trial would; "
                             f"log it (context().log_metric, MLflow or cloudml-hypertune), give it a regex under metrics:, "
                             f"or correct sweep.objective.metric (then run the sweep again with --new)")
                return True
        return False

    #: trials whose jobs failed, with none completed yet, after which a sweep stops (the spec or the
    #: script is wrong for every trial: a flag it lacks, a missing module)
    FAILED_FIRST = 3

    def _every_trial_failing(self) -> bool:
        """The first trials this run ended all failed their jobs, and no trial of the sweep has
        completed: every trial would fail."""
        import optuna

        if any(t.state == optuna.trial.TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)) or any(
                running.tail.values for running in self.running.values()):
            return False  # some trial trains: the failures depend on the values (out of memory at a large batch...)
        ended = [t for t in self._ended() if t.number in self.ended_here]  # not a resumed sweep's earlier ones
        if len(ended) < self.FAILED_FIRST or any(t.state != optuna.trial.TrialState.FAIL or t.user_attrs.get("job_state") != "FAILED"
                                                 for t in ended):
            return False
        # the same error, but for the values in it (`unrecognized arguments: --depth 3`)
        reasons = {re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", str(t.user_attrs.get("reason") or "")) for t in ended}
        if len(reasons) != 1:
            return False
        self.note = (f"stopped: the first {len(ended)} trials' jobs all failed with the same error, so every trial would: "
                     f"{ended[-1].user_attrs.get('reason') or 'none given'} (fix the script or the spec and run the sweep again "
                     f"with --new, or run the same command to go on as it is)")
        return True

    def _logged_metrics(self, job_id: str | None) -> list[str]:
        """The names of the metrics a trial's job logged (any way), sorted; none when it is gone."""
        from cloudtrain.runtime.reports import last_values

        try:
            record = self.runner.store.resolve(job_id or "")
        except CloudtrainError:
            return []
        return sorted(last_values(Path(record.details.get("run_dir") or ".")))[:12]

    def _grid_exhausted(self) -> bool:
        if self.sweep.algorithm != "grid":
            return False
        import optuna

        from cloudtrain.sweeps.space import grid_size

        trials = self.study.get_trials(deepcopy=False)  # a WAITING trial (an interrupted one's values) is still to run
        started = [t for t in trials if not t.user_attrs.get("interrupted") and t.state != optuna.trial.TrialState.WAITING]
        return len(started) >= grid_size(self.sweep)

    def _launch(self) -> None:
        trial = self.study.ask(distributions(self.sweep))
        params = dict(trial.params)
        loaded = trial_loaded(self.loaded, params, trial.number)
        plan = self.runner.plan(loaded, "local")
        with _signals_held():  # a Ctrl-C or SIGTERM while the job starts comes once it is known, so it is cancelled
            submission = self.runner.submit(plan)
            record = submission.record
            assert record is not None
            trial.set_user_attr("job_id", record.id)
            tail = MetricTail(Path(record.details["run_dir"]), self.sweep.objective.metric)
            self.running[trial.number] = RunningTrial(trial, record.id, tail, time.monotonic())

    def _poll(self, running: RunningTrial) -> Any | None:
        """Report new values; prune or finish the trial. Returns the frozen trial once it ended."""
        import optuna

        trial = running.trial
        for step, value in running.tail.read():
            trial.report(value, step)
            if trial.should_prune():
                self._cancel_quietly(running.job_id)
                self.runner.wait(running.job_id, timeout=60, poll_seconds=0.1)
                trial.set_user_attr("job_state", "CANCELLED")
                return self._tell(running, optuna.trial.TrialState.PRUNED)
        record, status = self.runner.status(running.job_id)
        if not status.state.is_terminal:
            return None
        for step, value in running.tail.read():  # values written just before the end
            trial.report(value, step)
        trial.set_user_attr("job_state", status.state.value)
        if status.state.value == "SUCCEEDED" and running.tail.last is not None:
            return self._tell(running, optuna.trial.TrialState.COMPLETE, running.tail.last)
        trial.set_user_attr("reason", status.message or f"no {self.sweep.objective.metric} was logged")
        return self._tell(running, optuna.trial.TrialState.FAIL)

    def _tell(self, running: RunningTrial, state: Any, value: float | None = None) -> Any:
        elapsed = time.monotonic() - running.started
        running.trial.set_user_attr("seconds", round(elapsed, 3))
        self.spend.add(self.bound.per_trial_usd or 0.0)
        self.study.tell(running.trial, value, state=state)
        self.ended_here.add(running.trial.number)
        return self.study._storage.get_trial(running.trial._trial_id)

    def _interrupt(self) -> None:
        """Ctrl-C or an error: cancel the trials' jobs and mark them interrupted (the next run of the
        sweep runs their values again)."""
        import optuna

        for running in list(self.running.values()):
            self._cancel_quietly(running.job_id)
            try:
                running.trial.set_user_attr("interrupted", True)
                self.study.tell(running.trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            except Exception:  # the storage itself may be what failed; the next run recovers the trial
                pass
        self.running.clear()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM put off until the block ends (then raised again, to the handlers there were),
    in the main thread. Not a signal mask: the processes started meanwhile would inherit it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        for sig in sorted(set(pending), key=lambda sig: sig != signal.SIGTERM):  # SIGTERM first: the stronger
            signal.raise_signal(sig)


def plan_check(loaded: "LoadedSpec", runner: "Runner") -> None:
    """Plan one trial before the sweep starts, so a spec the local backend refuses fails at once."""
    runner.plan(without_sweep(loaded), "local")
