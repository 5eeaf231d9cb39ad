"""The Azure ML emulator's early termination policies and sampling, as pure functions (no emulator):
each report of the primary metric is an interval; a trial is judged at its latest interval on the
policy's schedule against the trials that reached it."""

from __future__ import annotations

import random

from cloudtrain.emulators.azureml_sweep import check_sweep, proposals, sample, stop_reason

BANDIT = {"policyType": "Bandit", "delayEvaluation": 1, "evaluationInterval": 1, "slackFactor": 0.1, "slackAmount": 0}
MEDIAN = {"policyType": "MedianStopping", "delayEvaluation": 1, "evaluationInterval": 1}


def test_bandit_slack_factor_and_amount_by_goal() -> None:
    assert stop_reason(BANDIT, "minimize", {"a": [4.0], "b": [1.0]}, "a")  # 4 > 1 x 1.1
    assert stop_reason(BANDIT, "minimize", {"a": [1.05], "b": [1.0]}, "a") is None  # within 10 %
    assert stop_reason(BANDIT, "maximize", {"a": [0.8], "b": [1.0]}, "a")  # 0.8 < 1 / 1.1
    assert stop_reason(BANDIT, "maximize", {"a": [0.95], "b": [1.0]}, "a") is None
    amount = {**BANDIT, "slackFactor": 0, "slackAmount": 0.5}
    assert stop_reason(amount, "maximize", {"a": [0.4], "b": [1.0]}, "a") and not stop_reason(amount, "maximize", {"a": [0.6], "b": [1.0]}, "a")
    assert stop_reason(BANDIT, "minimize", {"a": [4.0], "b": [1.0]}, "b") is None  # the best is never outside its own slack
    assert stop_reason(BANDIT, "minimize", {"a": [4.0]}, "a") is None  # nothing to compare with yet


def test_the_schedule_delay_and_interval() -> None:
    policy = {**BANDIT, "delayEvaluation": 3, "evaluationInterval": 2}  # judged at intervals 3, 5, 7...
    good = [1.0] * 8
    assert stop_reason(policy, "maximize", {"a": [0.1] * 2, "b": good}, "a") is None  # before the delay
    assert stop_reason(policy, "maximize", {"a": [0.1] * 4, "b": good}, "a").startswith("bandit policy at interval 3")
    assert stop_reason(policy, "maximize", {"a": [5.0, 5.0, 5.0, 0.1, 0.1], "b": good}, "a") is None  # its best up to 5 is 5.0


def test_median_stopping_compares_with_the_median_of_running_averages() -> None:
    series = {"a": [9.0, 9.0], "b": [1.0, 1.0], "c": [2.0, 4.0]}  # averages over 1..2: 9, 1, 3 -> median 3
    assert stop_reason(MEDIAN, "minimize", series, "a")
    assert stop_reason(MEDIAN, "minimize", series, "c") is None  # its best (2) is better than 3
    assert stop_reason(MEDIAN, "minimize", series, "b") is None


def test_truncation_selection_stops_the_worst_percentage_at_the_interval() -> None:
    policy = {"policyType": "TruncationSelection", "delayEvaluation": 0, "evaluationInterval": 1, "truncationPercentage": 50}
    series = {"a": [0.1], "b": [0.9], "c": [0.5], "d": [0.7]}
    stopped = {name for name in series if stop_reason(policy, "maximize", series, name)}
    assert stopped == {"a", "c"}
    assert not stop_reason({**policy, "truncationPercentage": 20}, "maximize", {"a": [0.1], "b": [0.9]}, "a")  # 20 % of 2: none


def test_no_policy_stops_nothing() -> None:
    assert stop_reason(None, "minimize", {"a": [9.0], "b": [0.0]}, "a") is None


def test_sampling_stays_in_each_distribution_and_grid_takes_every_combination() -> None:
    rng = random.Random(7)
    for _ in range(200):
        assert 1.0 <= sample(["uniform", [1.0, 2.0]], rng) <= 2.0
        assert 0.001 <= sample(["loguniform", [-6.907755278982137, -2.302585092994046]], rng) <= 0.1 + 1e-12
        assert sample(["quniform", [1, 4, 1]], rng) in (1, 2, 3, 4)
        assert sample(["choice", [["a", "b"]]], rng) in ("a", "b")
        assert sample(["randint", [3]], rng) in (0, 1, 2)
    grid = {"searchSpace": {"x": ["choice", [[1, 2]]], "c": ["choice", [["a", "b"]]]},
            "samplingAlgorithm": {"samplingAlgorithmType": "Grid"}}
    assert list(proposals(grid, rng)) == [{"x": 1, "c": "a"}, {"x": 1, "c": "b"}, {"x": 2, "c": "a"}, {"x": 2, "c": "b"}]


def test_what_azure_ml_refuses_in_a_sweep_job() -> None:
    valid = {"trial": {"command": "python t.py --x ${{search_space.x}}", "environmentId": "azureml:env:1"},
             "objective": {"primaryMetric": "loss", "goal": "minimize"}, "samplingAlgorithm": {"samplingAlgorithmType": "Random"},
             "searchSpace": {"x": ["uniform", [0.0, 1.0]]}, "limits": {"maxTotalTrials": 2, "maxConcurrentTrials": 1}}
    assert check_sweep(valid) is None
    assert "grid sampling takes choice" in check_sweep({**valid, "samplingAlgorithm": {"samplingAlgorithmType": "Grid"}})
    assert "does not declare" in check_sweep({**valid, "trial": {**valid["trial"], "command": "python t.py ${{search_space.y}}"}})
    assert "maxTotalTrials" in check_sweep({**valid, "limits": {"maxTotalTrials": 0}})
    assert "primaryMetric" in check_sweep({**valid, "objective": {"goal": "minimize"}})


class _Service:
    """What a SweepRun uses of the emulator's service: its lock, jobs and runs."""

    def __init__(self, props: dict) -> None:
        import threading

        self.lock = threading.RLock()
        self.jobs = {"sweep": {"properties": props}}
        self.runs = {"sweep": {"status": "NotStarted", "parent": None}}

    def set_run(self, name: str, **changes: object) -> None:
        with self.lock:
            self.runs[name].update(changes)


def test_the_sweeps_own_timeout_cancels_its_running_trials_and_ends_it_canceled() -> None:
    from cloudtrain.emulators.azureml_sweep import SweepRun

    props = {"objective": {"primaryMetric": "loss", "goal": "minimize"}, "samplingAlgorithm": {"samplingAlgorithmType": "Random"},
             "searchSpace": {"x": ["uniform", [0.0, 1.0]]},
             "trial": {"command": "python t.py --x ${{search_space.x}}", "environmentId": "azureml:env:1"},
             "limits": {"maxTotalTrials": 4, "maxConcurrentTrials": 2, "timeout": "PT0.2S"}}
    service = _Service(props)
    launched: list[str] = []

    def create_child(parent: str, name: str, properties: dict) -> None:  # trials that run until canceled
        launched.append(name)
        service.runs[name] = {"status": "Running", "parent": parent}

    def cancel_child(name: str) -> None:
        service.set_run(name, status="Canceled")

    sweep = SweepRun(service, "sweep", create_child, cancel_child, poll_seconds=0.02)  # type: ignore[arg-type]
    sweep.start()
    sweep.join(timeout=60)  # without the limit it would run as long as its trials
    assert not sweep.is_alive()
    assert service.runs["sweep"]["status"] == "Canceled"
    assert "reached its limits.timeout (0.2 s)" in service.runs["sweep"]["error"]["message"]
    assert launched == ["sweep_0", "sweep_1"]  # none launched after the timeout
    assert all(service.runs[name]["status"] == "Canceled" for name in launched)
