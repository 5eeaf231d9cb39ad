"""The median early-stopping rule the emulators' tuning services share, against hand-computed values."""

from __future__ import annotations

import math

from cloudtrain.emulators.early_stopping import median_verdict


def test_the_latest_value_is_compared_with_the_median_of_the_peers_running_averages() -> None:
    peers = [[0.9, 0.9, 0.9], [0.1, 0.5], [0.5, 0.7, 0.8]]  # averages over 2 reports: 0.9, 0.3, 0.6 -> median 0.6
    assert median_verdict([0.7, 0.55], peers, maximize=True, use_best=False) is not None  # 0.55 < 0.6
    assert median_verdict([0.7, 0.65], peers, maximize=True, use_best=False) is None
    assert median_verdict([0.7, 0.55], peers, maximize=True, use_best=True) is None  # best so far 0.7 >= 0.6
    verdict = median_verdict([0.7, 0.65], peers, maximize=False, use_best=False)  # minimizing: 0.65 > 0.6
    assert verdict is not None and "0.65" in verdict and "median 0.6 " in verdict and "3 trials" in verdict


def test_only_peers_with_as_many_reports_count() -> None:
    assert median_verdict([5.0, 5.0, 5.0], [[1.0, 1.0]], maximize=False, use_best=False) is None
    assert median_verdict([5.0], [[1.0, 1.0]], maximize=False, use_best=False) is not None
    assert median_verdict([5.0], [], maximize=False, use_best=False) is None


def test_values_that_are_not_finite_stop_nothing() -> None:
    assert median_verdict([math.nan], [[1.0]], maximize=True, use_best=False) is None
    assert median_verdict([0.5], [[math.nan]], maximize=True, use_best=False) is None
    assert median_verdict([math.nan, 0.1], [[0.9, 0.9]], maximize=True, use_best=True) is not None  # best finite 0.1 < 0.9


class _Run:
    """What SageMaker's early stopping reads of a trial's training job, and what it does to one."""

    def __init__(self, status: str, losses: list[float]) -> None:
        from types import SimpleNamespace

        self.fake = SimpleNamespace(training_job_status=status, final_metric_data_list=None)
        self.metric_series = {"loss": losses}
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def cancel(self) -> None:  # the job printed one more value in its grace period, the last in its FinalMetricDataList
        self.fake.training_job_status = "Stopped"
        self.fake.final_metric_data_list = [{"MetricName": "loss", "Value": 7.0}]


def test_sagemaker_auto_early_stopping_measures_a_trial_against_completed_trials_only() -> None:
    """"Unlikely to perform better than previously completed training jobs": a trial still running
    is no yardstick; a trial early stopping stopped keeps the objective it was judged on."""
    from types import SimpleNamespace

    from cloudtrain.emulators.sagemaker_tuning_job import Trial, TuningJob

    first, second = _Run("InProgress", [0.0, 0.0]), _Run("InProgress", [49.0])
    job = SimpleNamespace(config={"TrainingJobEarlyStoppingType": "Auto"}, metric="loss", maximize=False,
                          trials=[Trial(name, "arn", {}, None, run) for name, run in (("first", first), ("second", second))])
    TuningJob._stop_early(job)
    assert second.fake.training_job_status == "InProgress"  # the first trial has not completed
    first.fake.training_job_status = "Completed"
    second.metric_series["loss"].append(49.0)
    TuningJob._stop_early(job)
    assert second.fake.training_job_status == "Stopped" and "worse than the median 0 of 1 trials" in second.notes[0]
    assert job.trials[1].objective("loss") == 49.0 and job.trials[1].objective_status("loss") == "Succeeded"  # what it was judged on
    user_stopped = Trial("third", "arn", {}, None, _Run("InProgress", [1.0]))
    user_stopped.run.cancel()  # StopTrainingJob, not early stopping: its objective is not evaluated
    assert user_stopped.objective("loss") is None and user_stopped.objective_status("loss") == "Failed"
