"""Sweeps: scale conversions, the three tuning requests, bounds and budgets, local sweeps that resume."""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from pathlib import Path

import pytest

from cloudtrain.api import Job
from cloudtrain.errors import BudgetExceededError, UnsupportedFeatureError
from cloudtrain.runner import Runner
from cloudtrain.spec import Sweep
from cloudtrain.sweeps.bounds import SpendTracker, check_sweep_budget, sweep_bound
from cloudtrain.sweeps.space import without_sweep

REPO = Path(__file__).resolve().parents[2]
SWEEP = {"objective": {"metric": "val_accuracy", "goal": "maximize"},
         "parameters": {"lr": {"type": "float", "min": 1e-4, "max": 1e-1, "scale": "log"},
                        "batch_size": {"type": "categorical", "values": [32, 64]},
                        "epochs": {"type": "int", "min": 2, "max": 10}},
         "early_stopping": "none", "max_trials": 8, "max_parallel": 2}

#: the trial scripts' flags: the tuned values and the spec's own epochs
FLAGS = """
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--width", type=int)
parser.add_argument("--epochs", type=int)
args = parser.parse_args()
"""
SCRIPT = FLAGS + """
import math
from cloudtrain.runtime import context
ctx = context()
assert ctx.hp("lr", 0.0) == args.lr and ctx.hp("width", 0) == args.width  # flags and context agree
loss = abs(math.log10(args.lr) + 2) + abs(args.width - 16) / 16
for epoch in range(1, args.epochs + 1):
    ctx.log_metric("val_loss", loss + 1.0 / epoch, step=epoch * 7)
"""
SPEC = """
name: toy
code: .
entrypoint: train.py
hyperparameters: {lr: 0.5, epochs: 3, width: 8}
max_runtime: 10m
sweep:
  objective: {metric: val_loss, goal: minimize}
  parameters:
    lr: {type: float, min: 0.0001, max: 1.0, scale: log}
    width: {type: categorical, values: [8, 16, 32]}
  early_stopping: median
  max_trials: 5
  max_parallel: 2
"""


def cnn_job(**sweep: object) -> Job:
    return Job.from_file(REPO / "examples" / "digits-cnn.yaml", {"sweep": {**SWEEP, **sweep}})


def plan(job: Job, cloud: str):  # type: ignore[no-untyped-def]
    return job.runner.plan(without_sweep(job._loaded), cloud, dry_run=True)


# -- scales, converted exactly ---------------------------------------------------------------------

def test_sagemaker_ranges_keep_real_bounds_with_a_log_scale() -> None:
    from cloudtrain.sweeps.sagemaker import parameter_ranges

    ranges = parameter_ranges(Sweep.model_validate(SWEEP))
    assert ranges["ContinuousParameterRanges"] == [{"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}]
    assert ranges["IntegerParameterRanges"] == [{"Name": "epochs", "MinValue": "2", "MaxValue": "10", "ScalingType": "Linear"}]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["32", "64"]}]


def test_vertex_parameters_keep_real_bounds_with_unit_log_scale() -> None:
    from cloudtrain.sweeps.vertex import parameter_specs

    specs = {p["parameterId"]: p for p in parameter_specs(Sweep.model_validate(SWEEP))}
    assert specs["lr"] == {"parameterId": "lr", "doubleValueSpec": {"minValue": 0.0001, "maxValue": 0.1}, "scaleType": "UNIT_LOG_SCALE"}
    assert specs["epochs"]["integerValueSpec"] == {"minValue": "2", "maxValue": "10"}
    assert specs["batch_size"] == {"parameterId": "batch_size", "discreteValueSpec": {"values": [32.0, 64.0]}}


def test_azureml_log_uniform_takes_natural_log_bounds() -> None:
    from cloudtrain.sweeps.azureml import search_space

    space = search_space(Sweep.model_validate(SWEEP))
    assert space["lr"]["type"] == "loguniform"
    assert space["lr"]["min_value"] == pytest.approx(-9.210340371976184)  # ln(1e-4), by hand
    assert space["lr"]["max_value"] == pytest.approx(-2.302585092994046)  # ln(0.1)
    assert math.exp(space["lr"]["min_value"]) == pytest.approx(1e-4)
    assert space["epochs"] == {"type": "quniform", "min_value": 2, "max_value": 10, "q": 1}
    assert space["batch_size"] == {"values": [32, 64], "type": "choice"}


# -- the three requests, validated by each SDK -----------------------------------------------------

def test_sagemaker_tuning_request_validates_and_keeps_the_training_definition() -> None:
    from cloudtrain.providers.sagemaker_request import build_request
    from cloudtrain.runtime.context import metric_regex
    from cloudtrain.sweeps.sagemaker import build_tuning_request, validate_tuning_request

    job = cnn_job(early_stopping="median")
    the_plan = plan(job, "sagemaker")
    request = build_tuning_request(the_plan, job.spec.sweep)
    validate_tuning_request(request)
    config, definition = request["HyperParameterTuningJobConfig"], request["TrainingJobDefinition"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 8}
    assert definition["AlgorithmSpecification"]["MetricDefinitions"][0] == {"Name": "val_accuracy", "Regex": metric_regex("val_accuracy")}
    assert not set(SWEEP["parameters"]) & set(definition["StaticHyperParameters"])
    single = build_request(the_plan)
    assert definition["ResourceConfig"] == single["ResourceConfig"] and definition["RoleArn"] == single["RoleArn"]
    assert len(request["HyperParameterTuningJobName"]) <= 32


def test_sagemaker_hyperband_is_its_strategy() -> None:
    from cloudtrain.sweeps.sagemaker import build_tuning_request, validate_tuning_request

    job = cnn_job(early_stopping="hyperband")
    request = build_tuning_request(plan(job, "sagemaker"), job.spec.sweep)
    validate_tuning_request(request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband" and config["TrainingJobEarlyStoppingType"] == "Off"
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 10}}


def test_sagemaker_refuses_grid_with_numeric_ranges() -> None:
    from cloudtrain.sweeps.sagemaker import build_tuning_request

    job = cnn_job(algorithm="grid", early_stopping="none", parameters={"epochs": SWEEP["parameters"]["epochs"]})
    with pytest.raises(UnsupportedFeatureError, match="sweep.parameters.epochs: SageMaker's Grid strategy takes categorical"):
        build_tuning_request(plan(job, "sagemaker"), job.spec.sweep)


def test_a_grid_over_a_float_parameter_is_refused_with_the_spec(tmp_path: Path) -> None:
    """validate refuses it as sweep (and every cloud) would: a float range has no finite grid."""
    import subprocess
    import sys

    from cloudtrain.errors import SpecError

    with pytest.raises(SpecError, match="sweep.algorithm: grid needs a finite set of values, and the float parameter lr"):
        cnn_job(algorithm="grid")
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(SPEC).replace("early_stopping: median", "algorithm: grid"))
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "validate", str(tmp_path / "job.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "the float parameter lr has none" in out.stderr and "Traceback" not in out.stderr
    line = 1 + textwrap.dedent(SPEC).replace("early_stopping: median", "algorithm: grid").splitlines().index("  algorithm: grid")
    assert f"job.yaml:{line}: sweep.algorithm: grid needs" in out.stderr, out.stderr  # the line of algorithm:, not of sweep:
    (tmp_path / "job.yaml").write_text(textwrap.dedent(SPEC))
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "validate", str(tmp_path / "job.yaml"), "--set", "sweep.max_trials=3",
                          "--set", "sweep.algorithm=grid"], capture_output=True, text=True, timeout=60)
    assert "--set sweep.algorithm: grid needs" in out.stderr, out.stderr  # the override that gave it, not the first under sweep


def test_sagemaker_refuses_a_grid_larger_than_max_trials() -> None:
    """SageMaker's Grid runs every combination (it takes no MaxNumberOfTrainingJobs), so a smaller
    max_trials would leave the sweep's cost bound below what it runs."""
    from cloudtrain.sweeps.sagemaker import build_tuning_request

    grid = {"lr": {"type": "categorical", "values": [0.1, 0.01]}, "batch_size": {"type": "categorical", "values": [32, 64]}}
    job = cnn_job(algorithm="grid", early_stopping="none", parameters=grid, max_trials=3)
    with pytest.raises(UnsupportedFeatureError, match=r"sweep.max_trials: .*every combination \(4\).*max_trials 3"):
        build_tuning_request(plan(job, "sagemaker"), job.spec.sweep)
    job = cnn_job(algorithm="grid", early_stopping="none", parameters=grid, max_trials=4)
    request = build_tuning_request(plan(job, "sagemaker"), job.spec.sweep)
    assert "MaxNumberOfTrainingJobs" not in request["HyperParameterTuningJobConfig"]["ResourceLimits"]


def test_vertex_tuning_job_parses_with_the_sdk() -> None:
    from cloudtrain.sweeps.vertex import build_tuning_request, validate_tuning_request

    job = cnn_job(algorithm="random", early_stopping="median")
    parsed = validate_tuning_request(build_tuning_request(plan(job, "vertex"), job.spec.sweep))
    assert parsed.max_trial_count == 8 and parsed.parallel_trial_count == 2
    study = type(parsed.study_spec)
    assert study.Algorithm.Name(parsed.study_spec.algorithm) == "RANDOM_SEARCH"
    assert study.ParameterSpec.ScaleType.Name(parsed.study_spec.parameters[0].scale_type) == "UNIT_LOG_SCALE"


def test_vertex_refuses_hyperband() -> None:
    from cloudtrain.sweeps.vertex import build_tuning_request

    job = cnn_job(early_stopping="hyperband")
    with pytest.raises(UnsupportedFeatureError, match="Hyperband"):
        build_tuning_request(plan(job, "vertex"), job.spec.sweep)


def test_azureml_sweep_job_loads_back_with_load_job() -> None:
    from cloudtrain.sweeps.azureml import sweep_document, validate_yaml

    job = cnn_job(algorithm="random", early_stopping="median")
    document = sweep_document(plan(job, "azureml"), job.spec.sweep)
    loaded = validate_yaml(document, REPO)
    assert loaded.sampling_algorithm == "random" and loaded.early_termination.type == "median_stopping"
    assert loaded.limits.max_total_trials == 8
    assert "${{search_space.lr}}" in document["trial"]["command"]


def test_hypertune_line_is_cloudml_hypertune_format() -> None:
    from cloudtrain.runtime.context import hypertune_line

    line = json.loads(hypertune_line("val_accuracy", 0.5, 12))
    assert line["val_accuracy"] == "0.5" and line["global_step"] == "12" and line["trial"] == "0"


# -- bounds and budgets ----------------------------------------------------------------------------

def test_sweep_bound_is_trials_times_the_trial_bound() -> None:
    job = cnn_job()
    estimate = plan(job, "sagemaker").estimate
    assert estimate is not None and estimate.max_total_usd is not None
    bound = sweep_bound(job.spec.sweep, estimate)
    # a trial's bound is $/h x max_runtime, not rounded to cents (a sweep multiplies it)
    assert bound.per_trial_usd == pytest.approx(estimate.effective_usd_per_hour * estimate.max_runtime_hours)
    assert bound.max_total_usd == round(8 * bound.per_trial_usd, 2)
    assert bound.max_total_usd == pytest.approx(8 * estimate.max_total_usd, abs=8 * 0.005)


def test_sweep_over_budget_is_refused() -> None:
    job = cnn_job(budget={"max_usd": 1.0})  # 8 trials x 1 h of a T4 machine
    with pytest.raises(BudgetExceededError) as caught:
        check_sweep_budget(job.spec.sweep, plan(job, "sagemaker").estimate)
    assert caught.value.exit_code == 4
    assert "over sweep.budget.max_usd $1.00;" in caught.value.message
    job = cnn_job(budget={"max_usd": 0.001})  # a budget below a cent is shown as given, not as $0.00
    with pytest.raises(BudgetExceededError, match=r"over sweep.budget.max_usd \$0.001;"):
        check_sweep_budget(job.spec.sweep, plan(job, "sagemaker").estimate)


def test_a_sweep_budget_that_cannot_be_proven_names_what_is_missing() -> None:
    job = Job.from_file(REPO / "examples" / "digits-cnn.yaml", {
        "sweep": {**SWEEP, "budget": {"max_usd": 5.0}}, "resources": {"instance_type": {"vertex": "n1-highmem-2"}}})
    with pytest.raises(BudgetExceededError) as caught:  # an unpriced machine: the fix is a price, not max_runtime
        check_sweep_budget(job.spec.sweep, plan(job, "vertex").estimate)
    assert "n1-highmem-2 on vertex in us-central1 has no sourced price" in caught.value.message
    assert "prices: [{cloud: vertex, region: us-central1, instance_type: n1-highmem-2, usd_per_hour: ...}]" in caught.value.hint
    assert "max_runtime" not in caught.value.hint
    job = Job.from_file(REPO / "examples" / "digits-cnn.yaml", {"sweep": {**SWEEP, "budget": {"max_usd": 5.0}}, "max_runtime": None})
    with pytest.raises(BudgetExceededError, match="the spec has no max_runtime") as caught:
        check_sweep_budget(job.spec.sweep, plan(job, "sagemaker").estimate)
    assert caught.value.hint.startswith("set max_runtime")


def test_spend_tracker_stops_before_the_trial_that_would_pass_the_budget() -> None:
    tracker = SpendTracker(max_usd=2.5, per_trial_usd=1.0)
    assert tracker.can_launch(0) and tracker.can_launch(1) and not tracker.can_launch(2)
    tracker.add(1.0)
    assert tracker.can_launch(0) and not tracker.can_launch(1)


# -- local sweeps ----------------------------------------------------------------------------------

@pytest.fixture
def toy(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(SPEC))
    return tmp_path / "job.yaml"


def test_local_sweep_beats_the_defaults_and_resumes_after_an_interrupt(toy: Path) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    job = Job.from_file(toy)
    seen: list[int] = []

    def interrupt_after_two(trial, progress):  # type: ignore[no-untyped-def]
        seen.append(trial.number)
        if progress.done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalSweep(job._loaded, Runner(), seed=3).run(on_trial_end=interrupt_after_two)
    resumed = LocalSweep(Job.from_file(toy)._loaded, Runner(), seed=3)
    before = resumed.progress().done
    assert before >= 2
    final = resumed.run()
    assert final.done == 5 and resumed.study.study_name == "toy"
    trials = resumed.study.get_trials()
    assert {t.number for t in trials if not t.user_attrs.get("interrupted")} >= set(seen)
    default = abs(math.log10(0.5) + 2) + 8 / 16 + 1 / 3  # the spec's own hyperparameters, by hand
    assert final.best_value < default
    for trial in trials:  # each trial is a recorded job with the trial's values
        record = Runner().store.resolve(trial.user_attrs["job_id"])
        assert record.name == f"toy-trial-{trial.number}"  # in `cloudtrain list`, each trial by its number
        spec = json.loads((Path(record.details["run_dir"]) / "spec.json").read_text())
        assert spec["sweep"] is None and spec["hyperparameters"]["lr"] == trial.params["lr"]


def test_trials_an_interruption_cut_short_run_their_values_again(toy: Path) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    def interrupt_while_two_run(progress):  # type: ignore[no-untyped-def]
        if progress.running == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalSweep(Job.from_file(toy, {"sweep.max_trials": 3})._loaded, Runner(), seed=5).run(on_progress=interrupt_while_two_run)
    resumed = LocalSweep(Job.from_file(toy, {"sweep.max_trials": 3})._loaded, Runner(), seed=5)
    final = resumed.run()
    trials = resumed.study.get_trials()
    cut = [t for t in trials if t.user_attrs.get("interrupted")]
    assert [t.number for t in cut] == [0, 1] and final.done == 3
    for trial in cut:  # its values ran again first, in a trial of their own
        (again,) = [t for t in trials if t.user_attrs.get("rerun_of") == trial.number]
        assert again.params == trial.params and again.state.name == "COMPLETE" and again.number in (2, 3)
    assert len(trials) == 5  # the two cut short, their two reruns, one new trial


def test_cli_sweep_json(toy: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cloudtrain", "sweep", str(toy), "--json", "--set", "sweep.max_trials=2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["best"]["params"]) == {"lr", "width"} and len(data["trials"]) == 2
    assert Path(data["figure"]).is_file()


def test_cli_sweep_says_why_each_trial_failed(toy: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "cloudtrain", "sweep", str(toy), "--set", "sweep.max_trials=1",
               "--set", "sweep.objective.metric=never_logged"]
    out = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr  # no trial gave a value
    data = json.loads(out.stdout)
    assert data["best"] is None and [t["reason"] for t in data["trials"]] == ["no never_logged was logged"]
    shown = subprocess.run([*command, "--new"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert "trial 0 failed: no never_logged was logged" in shown.stdout, shown.stdout + shown.stderr
    assert re.search(r"^trial 0 FAIL \(lr=\S+, width=\d+\); 1 of 1 ended$", shown.stderr, re.M), shown.stderr  # as it ended


def test_a_sweep_whose_first_trials_all_fail_stops_saying_why(toy: Path) -> None:
    """A parameter the script has no flag for fails every trial: the sweep stops after the first
    three instead of running them all, with the last one's error."""
    from cloudtrain.sweeps.local import LocalSweep

    job = Job.from_file(toy, {"sweep.parameters.depth": {"type": "int", "min": 1, "max": 4}, "sweep.max_trials": 8})
    sweep = LocalSweep(job._loaded, Runner(), seed=1)
    final = sweep.run()
    assert final.failed in (3, 4) and final.done == final.failed and not sweep.running, final  # 2 run at once: both may end together
    assert final.note and final.note.startswith(f"stopped: the first {final.failed} trials' jobs all failed with the same error, "
                                                "so every trial would")
    assert "unrecognized arguments: --depth" in final.note, final.note


def test_a_sweep_whose_objective_is_never_logged_stops_after_the_first_trial_that_ends(toy: Path) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    job = Job.from_file(toy, {"sweep.objective.metric": "val_acc", "sweep.max_trials": 6})  # the script logs val_loss
    sweep = LocalSweep(job._loaded, Runner(), seed=1)
    final = sweep.run()
    assert 1 <= final.failed <= 2 and final.complete == 0 and final.done < 6 and not sweep.running  # the two first trials at most
    assert final.note and final.note.startswith("stopped: trial ") and "without logging val_acc (it logged val_loss), so no trial would" in final.note
    for trial in sweep.study.get_trials():  # the other trial that was running was stopped, to run again
        assert trial.state.name == "FAIL"
        assert trial.user_attrs.get("interrupted") or trial.user_attrs["reason"] == "no val_acc was logged"
        _, status = Runner().wait(trial.user_attrs["job_id"], poll_seconds=0.1, timeout=60)
        assert status.state.is_terminal


#: a script that only prints its score, as real scripts do; the spec's metric finds it with a regex
PRINTING = FLAGS + """
for epoch in range(1, args.epochs + 1):
    print(f"epoch {epoch} average test loss: {abs(args.lr - 0.01) + abs(args.width - 16) / 16 + 1.0 / epoch:.6f}", flush=True)
"""
PRINTING_SPEC = SPEC.replace("max_runtime: 10m", 'max_runtime: 10m\nmetrics: [{name: "test loss", regex: "average test loss: ([0-9.]+)"}]'
                             ).replace("metric: val_loss", 'metric: "test loss"')


def test_an_objective_found_by_a_regex_in_the_output_drives_a_local_sweep(tmp_path: Path) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    (tmp_path / "train.py").write_text(textwrap.dedent(PRINTING))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(PRINTING_SPEC).replace("max_trials: 5", "max_trials: 3"))
    job = Job.from_file(tmp_path / "job.yaml")
    sweep = LocalSweep(job._loaded, Runner(), seed=3)
    final = sweep.run()
    trials = sweep.study.get_trials(deepcopy=False)
    assert final.complete + final.pruned == 3 and final.best_value is not None
    for trial in trials:
        if trial.state.name == "COMPLETE":  # the last printed value: epoch 3's
            lr, width = trial.params["lr"], trial.params["width"]
            assert trial.value == pytest.approx(abs(lr - 0.01) + abs(width - 16) / 16 + 1 / 3, abs=1e-6)
            assert sorted(trial.intermediate_values) == [1, 2, 3]


def test_vertex_and_azureml_refuse_an_objective_only_a_regex_finds(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(PRINTING))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(PRINTING_SPEC).replace("early_stopping: median", "early_stopping: none")
                                       + "framework: {name: sklearn}\n")
    job = Job.from_file(tmp_path / "job.yaml")
    from cloudtrain.sweeps import cloud as cloud_sweeps

    for cloud, reads in (("vertex", "cloudml-hypertune"), ("azureml", "MLflow")):
        with pytest.raises(UnsupportedFeatureError, match=rf"sweep.objective.metric: .*{reads}.*'test loss'"):
            cloud_sweeps.render(job._loaded, cloud, job.runner)
    assert cloud_sweeps.render(job._loaded, "sagemaker", job.runner).payload  # SageMaker reads it from the logs


#: a trial that runs until it is stopped (it says so first)
WAITING = FLAGS + """
import threading
print("trial running", flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("sig, code, said", [("SIGTERM", 143, "SIGTERM"), ("SIGINT", 130, "interrupted")])
def test_a_stopped_cli_sweep_cancels_its_running_trials_and_says_how_to_continue(tmp_path: Path, sig: str, code: int,
                                                                                 said: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    from cloudtrain.providers.base import JobState

    (tmp_path / "train.py").write_text(textwrap.dedent(WAITING))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(SPEC))
    sweep = subprocess.Popen([sys.executable, "-m", "cloudtrain", "sweep", str(tmp_path / "job.yaml")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background job ignores SIGINT
    runner = Runner()

    def running_trials() -> list:  # type: ignore[type-arg]
        started = [r for r in runner.list() if r.details.get("run_dir")]  # a job being submitted has none yet
        return [r for r in started if any("trial running" in line for line in runner.logs(r.id))]

    deadline = time.monotonic() + 120
    while len(running_trials()) < 2 and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.1)  # polling the trials' own progress: both started
    assert len(running_trials()) == 2, sweep.communicate(timeout=30)
    sweep.send_signal(getattr(signal, sig))
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == code, (out, err)
    assert f"stopped ({said}) with 0 of 5 trials ended" in " ".join(err.split()), err
    assert "Run the same command to continue it" in " ".join(err.split()) and "Traceback" not in err
    for record in running_trials():  # the trials' jobs ended with the sweep
        _, status = runner.wait(record.id, poll_seconds=0.1, timeout=60)
        assert status.state is JobState.CANCELLED


def test_a_sweep_dry_run_on_the_cheapest_cloud_renders_that_clouds_tuning_request() -> None:
    import subprocess
    import sys

    spec = str(REPO / "examples" / "digits-cnn-sweep.yaml")
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "sweep", spec, "--cloud", "cheapest", "--dry-run", "--json",
                          "--set", "sweep.algorithm=random"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    job = Job.from_file(REPO / "examples" / "digits-cnn-sweep.yaml", {"sweep.algorithm": "random"})
    cheapest = job.runner.plan(without_sweep(job._loaded), "cheapest", dry_run=True).cloud
    assert json.loads(out.stdout)["cloud"] == cheapest and cheapest in ("sagemaker", "vertex", "azureml")


def test_a_sweep_dry_run_says_what_submit_would_stage_and_need() -> None:
    """As `submit --dry-run` does: the code it would stage, the sweep's bound, and the settings shown as placeholders."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTRAIN_SAGEMAKER_")}
    spec = str(REPO / "examples" / "digits-cnn-sweep.yaml")
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "sweep", spec, "--cloud", "sagemaker", "--dry-run"],
                         capture_output=True, text=True, timeout=120, env={**env, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    told = " ".join(out.stderr.split())
    assert re.search(r"code: \d+ files, [0-9.]+ MiB from ", told), told
    assert re.search(r"sweep on sagemaker \S+: at most \$[0-9.]+ \(8 trials; dry run, nothing was sent\)", told), told
    assert "not set yet, shown as SET-... placeholders: sagemaker.role_arn, sagemaker.bucket" in told, told
    assert '"HyperParameterTuningJobConfig"' in out.stdout


def test_a_ctrl_c_while_a_trial_is_submitted_cancels_that_trial(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from cloudtrain.providers.base import JobState
    from cloudtrain.sweeps.local import LocalSweep

    (toy.parent / "train.py").write_text(textwrap.dedent(WAITING))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever runs pytest
    try:
        sweep = LocalSweep(Job.from_file(toy, {"sweep.max_parallel": 1})._loaded, Runner(), seed=1)
        submit = sweep.runner.submit

        def pressed_during_submit(plan):  # type: ignore[no-untyped-def]
            os.kill(os.getpid(), signal.SIGINT)
            return submit(plan)

        monkeypatch.setattr(sweep.runner, "submit", pressed_during_submit)
        with pytest.raises(KeyboardInterrupt):
            sweep.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    [trial] = sweep.study.get_trials()
    assert trial.user_attrs["interrupted"] and trial.state.name == "FAIL"
    _, status = Runner().wait(trial.user_attrs["job_id"], poll_seconds=0.1, timeout=60)
    assert status.state is JobState.CANCELLED  # the job that was starting was known, and cancelled


def test_a_resumed_sweep_is_not_stopped_by_an_earlier_runs_trial_without_the_objective(toy: Path) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    script = (toy.parent / "train.py").read_text()
    (toy.parent / "train.py").write_text(FLAGS)  # a first version that logs nothing
    first = LocalSweep(Job.from_file(toy)._loaded, Runner(), seed=2).run()
    assert first.note and "without logging val_loss" in first.note and first.done < 5
    (toy.parent / "train.py").write_text(script)  # fixed: it logs val_loss now
    final = LocalSweep(Job.from_file(toy)._loaded, Runner(), seed=2).run()
    assert final.note is None and final.done == 5 and final.complete + final.pruned >= 5 - first.done
