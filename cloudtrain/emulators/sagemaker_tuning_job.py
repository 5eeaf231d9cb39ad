"""One emulated SageMaker hyperparameter tuning job: its tuner thread and what Describe shows.

The tuner launches trials as real training jobs through the emulator's own CreateTrainingJob (a
boto3 client on the emulator's endpoint, exempt from faults as the service's own calls are), named
``<tuning job>-<NNN>-<8 hex>``, with HyperParameters = StaticHyperParameters + the tuned values
(strings) and the tuning job's Tags; DescribeTrainingJob of a trial shows its ``TuningJobArn``. At
most ``MaxParallelTrainingJobs`` run at once and ``MaxNumberOfTrainingJobs`` in all (Grid: the
grid's size, or fewer when the maximum is lower).

A trial's objective is the objective metric's entry in its ``FinalMetricDataList``: the last value
that the metric's ``MetricDefinitions`` regex matched in the trial's log lines. The objective is
``Succeeded`` for a trial that Completed and printed the metric, and for one that early stopping
stopped (the value it was judged on); a trial that failed, was
stopped by StopTrainingJob, or never printed it is ``Failed`` for the objective and is never the
best. ``BestTrainingJob`` is the best of the Succeeded trials (the earliest on a tie).

Status: InProgress while trials run; Completed when they have all ended and at least one gave an
objective, Failed when none did (or a trial could not be created); StopHyperParameterTuningJob
gives Stopping (running trials stopped as StopTrainingJob stops them) then Stopped. Completion criteria:
``TargetObjectiveMetricValue`` and ``BestObjectiveNotImproving`` stop new launches once met, and
``ResourceLimits.MaxRuntimeInSeconds`` stops the running trials when it passes; ``ConvergenceDetected``
is accepted and not applied.

``TrainingJobEarlyStoppingType: Auto`` is applied as SageMaker documents it: after each value of the
objective metric a running trial logs, it is stopped (as StopTrainingJob stops a job: ``Stopped``)
when that value is worse than the median of the running averages, over as many values, of the
trials launched before it that have completed ("unlikely to perform better than previously
completed training jobs", as the API reference puts it; a trial still running is no yardstick)
(:mod:`cloudtrain.emulators.early_stopping`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cloudtrain.emulators.early_stopping import median_verdict
from cloudtrain.emulators.sagemaker_tuning_request import trial_request
from cloudtrain.emulators.sagemaker_tuning_space import Parameter, grid_size, sampler_for

TERMINAL = ("Completed", "Failed", "Stopped")


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


@dataclass
class Trial:
    name: str
    arn: str
    tuned: dict[str, str]
    ticket: Any
    run: Any  # the emulator's TrainingJobRun
    told: bool = False
    judged: int = 0  # objective values early stopping has looked at
    stopped_early: str | None = None  # why early stopping stopped it
    judged_value: float | None = None  # the value early stopping stopped it on

    @property
    def fake(self) -> Any:
        return self.run.fake

    @property
    def status(self) -> str:
        return self.fake.training_job_status

    def objective(self, metric: str) -> float | None:
        """The final value of the objective metric, for a trial that Completed with it or that early
        stopping stopped."""
        if self.status == "Stopped" and self.stopped_early:
            return self.judged_value  # not what it printed during its grace period
        if self.status != "Completed":
            return None
        values = [m["Value"] for m in self.fake.final_metric_data_list or [] if m["MetricName"] == metric]
        return float(values[-1]) if values else None

    def objective_status(self, metric: str) -> str:
        if self.status not in TERMINAL:
            return "Pending"
        return "Succeeded" if self.objective(metric) is not None else "Failed"


@dataclass
class TuningJob:
    request: dict[str, Any]
    parameters: list[Parameter]
    arn: str
    account: str
    region: str
    client: Any  # boto3 SageMaker client on the emulator, faults off
    emulator: Any
    trials: list[Trial] = field(default_factory=list)
    status: str = "InProgress"
    failure_reason: str | None = None
    end_time: Any = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.stop_requested = False
        self.creation_time = self.last_modified_time = _now()
        self._started = time.monotonic()
        config = self.request["HyperParameterTuningJobConfig"]
        self.config, self.strategy = config, config["Strategy"]
        self.metric = config["HyperParameterTuningJobObjective"]["MetricName"]
        self.maximize = config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
        limits = config["ResourceLimits"]
        self.parallel, self.max_runtime = limits["MaxParallelTrainingJobs"], limits.get("MaxRuntimeInSeconds")
        maximum = limits.get("MaxNumberOfTrainingJobs")
        if self.strategy == "Grid":
            maximum = min(grid_size(self.parameters), maximum or grid_size(self.parameters))
        self.maximum = maximum
        self.sampler = sampler_for(self.strategy, self.parameters, config.get("RandomSeed"), self.maximize)
        self.thread = threading.Thread(target=self._tune, name=f"tuning-job-{self.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.request["HyperParameterTuningJobName"]

    # -- the emulator's job interface (Emulator.stop cancels and joins) ---------------------------

    def start(self) -> "TuningJob":
        self.thread.start()
        return self

    def cancel(self) -> bool:
        """StopHyperParameterTuningJob: False when the job already ended."""
        with self.lock:
            if self.status in TERMINAL:
                return False
            self.stop_requested, self.status, self.last_modified_time = True, "Stopping", _now()
        self.wake.set()
        return True

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    # -- the tuner -------------------------------------------------------------------------------

    def _tune(self) -> None:
        try:
            self._launch_until_done()
        except Exception as error:  # a trial could not be created, or an emulator bug
            with self.lock:
                self.failure_reason = f"{type(error).__name__}: {error}"
            self.stop_requested = True
        self._stop_running()
        with self.lock:
            succeeded = any(t.objective_status(self.metric) == "Succeeded" for t in self.trials)
            if self.failure_reason:
                self.status = "Failed"
            elif self.status == "Stopping":
                self.status = "Stopped"
            elif succeeded:
                self.status = "Completed"
            else:
                self.status = "Failed"
                self.failure_reason = (f"No training job reported the objective metric {self.metric}: every training job "
                                       "failed or did not print it.")
            self.end_time = self.last_modified_time = _now()

    def _launch_until_done(self) -> None:
        exhausted = False
        while not self.stop_requested:
            self._learn()
            self._stop_early()
            running = [t for t in self.trials if t.status not in TERMINAL]
            if self.max_runtime and time.monotonic() - self._started > self.max_runtime:
                return
            if not exhausted and len(self.trials) < self.maximum and len(running) < self.parallel and not self._criteria_met():
                proposal = self.sampler.propose()
                if proposal is None:
                    exhausted = True
                else:
                    self._launch(*proposal)
                continue
            if not running:
                return
            self.wake.wait(0.1)
            self.wake.clear()

    def _launch(self, ticket: Any, tuned: dict[str, str]) -> None:
        name = f"{self.name}-{len(self.trials) + 1:03d}-{secrets.token_hex(4)}"
        request = trial_request(self.request["TrainingJobDefinition"], name, tuned, self.request.get("Tags") or [])
        arn = self.client.create_training_job(**request)["TrainingJobArn"]
        run = self.emulator.job(name)
        run.fake.tuning_job_arn = self.arn  # DescribeTrainingJob's TuningJobArn
        with self.lock:
            self.trials.append(Trial(name, arn, tuned, ticket, run))
            self.last_modified_time = _now()

    def _learn(self) -> None:
        for trial in list(self.trials):
            if not trial.told and trial.status in TERMINAL:
                trial.told = True
                self.sampler.tell(trial.ticket, trial.objective(self.metric))
                with self.lock:
                    self.last_modified_time = _now()

    def _stop_early(self) -> None:
        if self.config.get("TrainingJobEarlyStoppingType") != "Auto":
            return
        for index, trial in enumerate(list(self.trials)):
            values = list(trial.run.metric_series.get(self.metric, ()))
            if trial.stopped_early or trial.status in TERMINAL or len(values) <= trial.judged:
                continue
            trial.judged = len(values)  # each value is judged once, when it arrives
            earlier = [list(t.run.metric_series.get(self.metric, ())) for t in self.trials[:index] if t.status == "Completed"]
            reason = median_verdict(values, earlier, self.maximize, use_best=False)
            if reason:
                trial.stopped_early, trial.judged_value = reason, float(values[-1])
                trial.run.note(f"Stopped by the tuning job's early stopping: {reason}")
                trial.run.cancel()

    def _criteria_met(self) -> bool:
        criteria = self.config.get("TuningJobCompletionCriteria") or {}
        best = self.best()
        target = criteria.get("TargetObjectiveMetricValue")
        if best is not None and target is not None:
            value = best.objective(self.metric)
            if (value >= target) if self.maximize else (value <= target):
                return True
        patience = (criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
        return bool(patience) and self.not_improving() >= patience

    def _stop_running(self) -> None:
        for trial in list(self.trials):
            if trial.status not in TERMINAL:
                trial.run.cancel()  # what StopTrainingJob does to a job the emulator runs
        for trial in list(self.trials):
            trial.run.join(timeout=self.emulator.stop_grace_seconds + 30)
        self._learn()

    # -- what Describe and List show ------------------------------------------------------------

    def best(self) -> Trial | None:
        scored = [(t.objective(self.metric), index, t) for index, t in enumerate(self.trials)]
        scored = [(value, index, t) for value, index, t in scored if value is not None]
        if not scored:
            return None
        return min(scored, key=lambda s: (-s[0] if self.maximize else s[0], s[1]))[2]

    def not_improving(self) -> int:
        """Trials that ended after the best one, in launch order, without beating it."""
        best = self.best()
        if best is None:
            return sum(1 for t in self.trials if t.status in TERMINAL)
        return sum(1 for t in self.trials[self.trials.index(best) + 1:] if t.status in TERMINAL)

    def training_counters(self) -> dict[str, int]:
        counts = dict.fromkeys(("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0)
        for trial in self.trials:
            status = trial.status
            if status == "Failed":
                status = "RetryableError" if (trial.fake.failure_reason or "").startswith("InternalServerError") else "NonRetryableError"
            counts["InProgress" if status == "Stopping" else status] += 1
        return counts

    def objective_counters(self) -> dict[str, int]:
        counts = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
        for trial in self.trials:
            counts[trial.objective_status(self.metric)] += 1
        return counts

    def trial_summary(self, trial: Trial) -> dict[str, Any]:
        fake = trial.fake
        summary = {"TrainingJobName": trial.name, "TrainingJobArn": trial.arn, "TuningJobName": self.name,
                   "CreationTime": fake.creation_time, "TrainingStartTime": fake.training_start_time,
                   "TrainingEndTime": fake.training_end_time, "TrainingJobStatus": trial.status,
                   "TunedHyperParameters": dict(trial.tuned), "FailureReason": fake.failure_reason,
                   "ObjectiveStatus": trial.objective_status(self.metric)}
        value = trial.objective(self.metric)
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": "Maximize" if self.maximize else "Minimize", "MetricName": self.metric, "Value": value}
        return {k: v for k, v in summary.items() if v is not None}

    def summary(self) -> dict[str, Any]:
        with self.lock:
            summary = {"HyperParameterTuningJobName": self.name, "HyperParameterTuningJobArn": self.arn,
                       "HyperParameterTuningJobStatus": self.status, "Strategy": self.strategy,
                       "CreationTime": self.creation_time, "HyperParameterTuningEndTime": self.end_time,
                       "LastModifiedTime": self.last_modified_time, "TrainingJobStatusCounters": self.training_counters(),
                       "ObjectiveStatusCounters": self.objective_counters(), "ResourceLimits": self.config["ResourceLimits"]}
        return {k: v for k, v in summary.items() if v is not None}

    def describe(self) -> dict[str, Any]:
        with self.lock:
            best = self.best()
            seconds = ((self.end_time or _now()) - self.creation_time).total_seconds()
            answer = {**self.summary(), "HyperParameterTuningJobConfig": self.config,
                      "TrainingJobDefinition": self.request["TrainingJobDefinition"],
                      "WarmStartConfig": self.request.get("WarmStartConfig"), "Autotune": self.request.get("Autotune"),
                      "BestTrainingJob": self.trial_summary(best) if best is not None else None,
                      "FailureReason": self.failure_reason,
                      "TuningJobCompletionDetails": {"NumberOfTrainingJobsObjectiveNotImproving": self.not_improving()},
                      "ConsumedResources": {"RuntimeInSeconds": max(0, round(seconds))}}
        answer.pop("Strategy"), answer.pop("ResourceLimits")
        return {k: v for k, v in answer.items() if v is not None}
