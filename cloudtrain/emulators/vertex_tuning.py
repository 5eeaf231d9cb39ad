"""The Vertex AI emulator's hyperparameter tuning jobs (JobService ``HyperparameterTuningJob``), run
for real: every trial is a CustomJob that runs through the same JobService operations as any other.

A created job (JOB_STATE_QUEUED) goes RUNNING and launches trials, at most ``parallel_trial_count``
at a time and ``max_trial_count`` in all (for ``GRID_SEARCH``, at most the grid's size), each with
values its study's sampler proposes (:mod:`~cloudtrain.emulators.vertex_tuning_space`). Trial N's
CustomJob (display name ``<job>-trial-N``) is the ``trial_job_spec`` with, in every pool,
``--<parameterId>=<value>`` appended to the container's (or python package's) args, the env
``CLOUD_ML_TRIAL_ID=N`` and ``CLOUD_ML_HP_METRIC_FILE`` (a file of its own, where
``cloudml-hypertune`` writes), and the base output directory ``<base>/N`` (so ``AIP_MODEL_DIR`` is
``<base>/N/model/``), as on Vertex; ``Trial.custom_job`` names it. When its job ends, the trial's
final measurement is the last value of the study's metric in that file (its best value with
``measurement_selection_type: BEST_MEASUREMENT``, which the SDK's ``HyperparameterTuningJob``
sends by default): SUCCEEDED with it, or INFEASIBLE (with ``infeasible_reason``) when its job did
not succeed or reported no finite value, and then never the best. The job ends SUCCEEDED once its trials end, FAILED when no trial succeeded
or ``max_failed_trial_count`` (when above 0) trials failed; CancelHyperparameterTuningJob cancels
the running trials' jobs and ends it CANCELLED. The tuning job reports no best trial of its own
(Vertex has no such field): a client compares the trials' final measurements.

``median_automated_stopping_spec`` is applied on each poll: a running trial whose best reported
value so far is worse than the median of the running averages, over as many reports, of the
succeeded trials is stopped (its job cancelled) and ends SUCCEEDED with the measurement it reached,
as Vertex completes a trial its early stopping ends (:mod:`cloudtrain.emulators.early_stopping`;
reports are counted, as with ``use_elapsed_duration: false``). Not emulated: the decay-curve and
convergence stopping specs (accepted; every trial runs to its end) and conditional parameters (refused).
"""

from __future__ import annotations

import math
import random
import threading
import traceback
from pathlib import Path
from typing import Any

from cloudtrain.emulators.early_stopping import median_verdict
from cloudtrain.emulators.vertex_jobs import TERMINAL, now
from cloudtrain.emulators.vertex_tuning_space import argument_value, check_study, distributions, grid_size, new_study, trial_parameters
from cloudtrain.emulators.vertex_validation import ApiError, filter_terms, list_page, matches, validate_job
from cloudtrain.runtime.reports import hypertune_reports


def measurements(path: Path, metric_id: str) -> list[tuple[float, int]]:
    """The (value, step) reports of ``metric_id`` in a cloudml-hypertune metrics file, in order."""
    return [(report.value, report.step) for report in hypertune_reports(path, metric_id)]


def final_measurement(reports: list[tuple[float, int]], best_of: str | None = None) -> tuple[float, int] | None:
    """(the last of a trial's ``reports`` (:func:`measurements`), its step), or None; ``best_of``
    (``MAXIMIZE`` / ``MINIMIZE``): the best value instead (BEST_MEASUREMENT)."""
    if best_of is not None:
        finite = [report for report in reports if math.isfinite(report[0])]
        reports = [(max if best_of == "MAXIMIZE" else min)(finite, key=lambda r: r[0])] if finite else []
    return reports[-1] if reports and math.isfinite(reports[-1][0]) else None


class TuningRun:
    """One tuning job (``job``, an ``aiplatform_v1.HyperparameterTuningJob``) run in a thread;
    ``service`` is the emulator's ``vertex.JobService``, whose lock guards ``job``."""

    def __init__(self, service: Any, parent: str, job: Any) -> None:
        self.service, self.parent, self.job = service, parent, job
        self.lock = service.lock
        self.id = job.name.rsplit("/", 1)[-1]
        self.root = Path(service.root).parent / "tuning" / self.id
        self.cancel_requested = False
        self.active: dict[str, tuple[Any, Any]] = {}  # trial id -> (Optuna trial, CustomJobRun)
        self.stopped_early: dict[str, str] = {}  # trial id -> why early stopping ended it
        self.last_infeasible = ""  # the latest infeasible trial and why, for the job's error
        self.completed: dict[str, list[float]] = {}  # succeeded trial id -> the values it reported (early stopping's peers)
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"vertex-tuning-{self.id}", daemon=True)

    @property
    def state(self) -> str:
        with self.lock:
            return self.job.state.name

    def start(self) -> "TuningRun":
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    def cancel(self) -> bool:
        """Cancel the job and its running trials; False when it already ended."""
        with self.lock:
            if self.job.state.name in TERMINAL:
                return False
            if not self.cancel_requested:
                self.cancel_requested = True
                self._set_state("JOB_STATE_CANCELLING")
            runs = [run for _, run in self.active.values()]
        for run in runs:
            run.cancel()
        self._wake.set()
        return True

    def _set_state(self, state: str, error: tuple[int, str] | None = None) -> None:
        from google.cloud import aiplatform_v1

        stamp = now()
        self.job.state = aiplatform_v1.JobState[state]
        self.job.update_time = stamp
        if state == "JOB_STATE_RUNNING" and not self.job.start_time:
            self.job.start_time = stamp
        if state in TERMINAL:
            self.job.end_time = stamp
        if error:
            self.job.error = {"code": error[0], "message": error[1]}

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # an emulator bug: end the job and say so
            with self.lock:
                for _, run in self.active.values():
                    run.cancel()
                if self.job.state.name not in TERMINAL:
                    self._set_state("JOB_STATE_FAILED", (13, f"Internal error in the emulator: {type(error).__name__}: {error}"))
            traceback.print_exc()  # the emulator's own output (`emulator start` shows it)

    def _run(self) -> None:
        study_spec = self.job.study_spec
        study, space = new_study(study_spec), distributions(study_spec)
        total = int(self.job.max_trial_count)
        if study_spec.algorithm.name == "GRID_SEARCH":
            total = min(total, grid_size(study_spec))
        parallel = max(1, int(self.job.parallel_trial_count))
        max_failed = int(self.job.max_failed_trial_count or 0)
        launched = failed = succeeded = 0
        with self.lock:
            if not self.cancel_requested:
                self._set_state("JOB_STATE_RUNNING")
        while True:
            with self.lock:
                stopping = self.cancel_requested or (max_failed > 0 and failed >= max_failed)
                while not stopping and launched < total and len(self.active) < parallel:
                    launched += 1
                    self._launch(str(launched), study.ask(space))
                if not self.active:
                    break
                ended = [trial_id for trial_id, (_, run) in self.active.items() if run.state in TERMINAL]
            if not ended:
                self._stop_early()
                self._wake.wait(self.service.settings.poll_seconds)
                self._wake.clear()
                continue
            for trial_id in ended:
                if self._finish(trial_id, study):
                    succeeded += 1
                else:
                    failed += 1
        with self.lock:
            if self.cancel_requested:
                self._set_state("JOB_STATE_CANCELLED", (1, "CANCELED"))
            elif max_failed > 0 and failed >= max_failed:
                self._set_state("JOB_STATE_FAILED", (9, f"{failed} trials failed (max_failed_trial_count is {max_failed}). "
                                                        f"{self.last_infeasible}"))
            elif not succeeded:
                self._set_state("JOB_STATE_FAILED", (9, f"All {failed} trials failed or reported no {self._metric()}. "
                                                        f"{self.last_infeasible}"))
            else:
                self._set_state("JOB_STATE_SUCCEEDED")

    def _stop_early(self) -> None:
        """Median automated stopping (see the module docstring)."""
        spec = self.job.study_spec
        if "median_automated_stopping_spec" not in spec:
            return
        maximize = spec.metrics[0].goal.name == "MAXIMIZE"
        with self.lock:
            running = [(trial_id, run) for trial_id, (_, run) in self.active.items()
                       if trial_id not in self.stopped_early and run.state not in TERMINAL]
            completed = list(self.completed.values())
        for trial_id, run in running:
            values = [value for value, _ in measurements(self._metrics_file(trial_id), self._metric())]
            reason = median_verdict(values, completed, maximize, use_best=True)
            if reason:
                with self.lock:
                    self.stopped_early[trial_id] = reason
                run.cancel()

    def _metric(self) -> str:
        return self.job.study_spec.metrics[0].metric_id

    def _metrics_file(self, trial_id: str) -> Path:
        return self.root / f"trial-{trial_id}" / "output.metrics"

    def _launch(self, trial_id: str, proposal: Any) -> None:
        """Create and start trial ``trial_id``'s CustomJob (under the lock)."""
        from google.cloud import aiplatform_v1

        order = [spec.parameter_id for spec in self.job.study_spec.parameters]
        values = {name: proposal.params[name] for name in order}
        spec = aiplatform_v1.CustomJobSpec.deserialize(aiplatform_v1.CustomJobSpec.serialize(self.job.trial_job_spec))
        arguments = [f"--{name}={argument_value(value)}" for name, value in values.items()]
        metrics = self._metrics_file(trial_id)
        metrics.parent.mkdir(parents=True, exist_ok=True)
        variables = [aiplatform_v1.EnvVar(name="CLOUD_ML_TRIAL_ID", value=trial_id),
                     aiplatform_v1.EnvVar(name="CLOUD_ML_HP_METRIC_FILE", value=str(metrics))]
        for pool in spec.worker_pool_specs:
            target = pool.python_package_spec if pool.python_package_spec.python_module else pool.container_spec
            target.args.extend(arguments)
            target.env.extend(variables)
        base = spec.base_output_directory.output_uri_prefix
        if base:
            spec.base_output_directory.output_uri_prefix = f"{base.rstrip('/')}/{trial_id}"
        custom = aiplatform_v1.CustomJob(display_name=f"{self.job.display_name}-trial-{trial_id}", job_spec=spec,
                                         encryption_spec=self.job.encryption_spec)
        run = self.service.create_custom_job(self.parent, custom)
        self.job.trials.append(aiplatform_v1.Trial(id=trial_id, state=aiplatform_v1.Trial.State.ACTIVE,
                                                   parameters=trial_parameters(values), start_time=now(),
                                                   custom_job=run.job.name))
        self.job.update_time = now()
        self.active[trial_id] = (proposal, run)
        run.start()

    def _finish(self, trial_id: str, study: Any) -> bool:
        """Record trial ``trial_id``'s outcome (its job has ended); whether it succeeded."""
        from google.cloud import aiplatform_v1
        from optuna.trial import TrialState

        with self.lock:
            proposal, run = self.active.pop(trial_id)
            job_state = run.job.state.name
            job_error = run.job.error.message
        study_spec = self.job.study_spec
        best_of = study_spec.metrics[0].goal.name if study_spec.measurement_selection_type.name == "BEST_MEASUREMENT" else None
        reports = measurements(self._metrics_file(trial_id), self._metric())
        measured = final_measurement(reports, best_of)
        with self.lock:
            trial = next(t for t in self.job.trials if t.id == trial_id)
            trial.end_time = self.job.update_time = now()
            if (job_state == "JOB_STATE_SUCCEEDED" or trial_id in self.stopped_early) and measured is not None:
                trial.state = aiplatform_v1.Trial.State.SUCCEEDED
                self.completed[trial_id] = [value for value, _ in reports]
                trial.final_measurement = aiplatform_v1.Measurement(
                    step_count=measured[1], metrics=[aiplatform_v1.Measurement.Metric(metric_id=self._metric(), value=measured[0])])
            else:
                trial.state = aiplatform_v1.Trial.State.INFEASIBLE
                trial.infeasible_reason = (f"The trial's job ended {job_state}: {job_error}" if job_state != "JOB_STATE_SUCCEEDED"
                                           else f"The trial reported no value of the metric {self._metric()}.")
                self.last_infeasible = f"Trial {trial_id}: {trial.infeasible_reason}"
        if trial.state == aiplatform_v1.Trial.State.SUCCEEDED:
            study.tell(proposal, measured[0])
            return True
        study.tell(proposal, state=TrialState.FAIL)
        return False


class TuningJobs:
    """The tuning jobs of one ``vertex.JobService`` (``service``), whose lock guards them too."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.runs: dict[str, TuningRun] = {}

    def create(self, parent: str, job: Any) -> TuningRun:
        """Record ``job`` as created (QUEUED); the caller answers it (under the lock), then ``start()``s the run."""
        from google.cloud import aiplatform_v1

        if not job.display_name:
            raise ApiError(400, "HyperparameterTuningJob.display_name is required.")
        if int(job.max_trial_count) < 1 or int(job.parallel_trial_count) < 1:
            raise ApiError(400, "max_trial_count and parallel_trial_count must be at least 1.")
        if int(job.max_failed_trial_count) < 0:
            raise ApiError(400, "max_failed_trial_count cannot be negative.")
        if job.trials:
            raise ApiError(400, "HyperparameterTuningJob.trials is output only.")
        check_study(job.study_spec)
        validate_job(aiplatform_v1.CustomJob(display_name=job.display_name, job_spec=job.trial_job_spec, labels=dict(job.labels)))
        job.name = f"{parent}/hyperparameterTuningJobs/{random.randrange(10**18, 10**19)}"
        job.state = aiplatform_v1.JobState.JOB_STATE_QUEUED
        job.create_time = job.update_time = now()
        run = TuningRun(self.service, parent, job)
        with self.service.lock:
            self.runs[job.name] = run
        return run

    def named(self, name: str) -> TuningRun:
        run = self.runs.get(name)
        if run is None:
            raise ApiError(404, f"The HyperparameterTuningJob does not exist: {name}")
        return run

    def list(self, parent: str, filter_text: str, page_size: int, page_token: str) -> tuple[list[Any], str]:
        """(one page of the jobs under ``parent`` that match ``filter_text``, newest first; next page token),
        with the filter terms of ListCustomJobs."""
        terms = filter_terms(filter_text)
        with self.service.lock:
            jobs = [r.job for n, r in self.runs.items() if n.startswith(parent + "/")
                    and all(matches(r.job, key, value) for key, value in terms)]
        jobs.sort(key=lambda j: j.create_time, reverse=True)
        return list_page(jobs, page_size, page_token)

    def cancel(self, name: str) -> None:
        if not self.named(name).cancel():
            raise ApiError(400, f"Cannot cancel {name}: the job is already in a final state")

    def delete(self, name: str) -> str:
        run = self.named(name)
        if run.state not in TERMINAL:
            raise ApiError(400, f"Cannot delete {name}: the job is still running; cancel it first")
        with self.service.lock:
            del self.runs[name]
        return f"{name}/operations/{random.randrange(10**18)}"
