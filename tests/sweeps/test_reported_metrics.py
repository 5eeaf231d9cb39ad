"""Scripts written for Vertex AI (cloudml-hypertune) and Azure ML (MLflow) report their metrics,
unchanged, to a local run and to a local sweep's pruner."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from cloudtrain.api import Job, Run
from cloudtrain.runner import Runner
from cloudtrain.runtime.reports import HYPERTUNE_LOCAL, hypertune_reports, last_values, mlflow_reports
from cloudtrain.sweeps.metrics import MetricTail

from test_sweeps import FLAGS as ARGUMENTS  # the trial scripts' flags
from test_sweeps import SPEC as SWEEP_SPEC

FLAGS = ARGUMENTS + """
def score(epoch):
    return abs(args.lr - 0.01) + abs(args.width - 16) / 16 + 1.0 / epoch
"""
#: the way the Vertex AI samples report (cloudml-samples, vertex-ai-samples): the cloudml-hypertune package
HYPERTUNE_SCRIPT = FLAGS + """
import hypertune
reporter = hypertune.HyperTune()
for epoch in range(1, args.epochs + 1):
    reporter.report_hyperparameter_tuning_metric(hyperparameter_metric_tag="my_loss", metric_value=score(epoch), global_step=epoch)
"""
#: the way the Azure ML samples report: MLflow, with no tracking URI of their own
MLFLOW_SCRIPT = FLAGS + """
import mlflow
for epoch in range(1, args.epochs + 1):
    mlflow.log_metric("my_loss", score(epoch), step=epoch)
"""
#: the sweep of test_sweeps, of the metric these scripts report, without pruning, and without MLflow's telemetry
SPEC = (SWEEP_SPEC.replace("name: toy", "name: reported").replace("metric: val_loss", "metric: my_loss")
        .replace("max_runtime: 10m", 'max_runtime: 10m\nenv: {MLFLOW_DISABLE_TELEMETRY: "true"}')
        .replace("early_stopping: median", "early_stopping: none").replace("max_trials: 5", "max_trials: 3"))


def expected(params: dict, epoch: int) -> float:
    return abs(params["lr"] - 0.01) + abs(params["width"] - 16) / 16 + 1.0 / epoch


def write_job(tmp_path: Path, script: str) -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(script))
    (tmp_path / "job.yaml").write_text(textwrap.dedent(SPEC))
    return tmp_path / "job.yaml"


@pytest.mark.parametrize("script", [HYPERTUNE_SCRIPT, MLFLOW_SCRIPT], ids=["cloudml-hypertune", "mlflow"])
def test_a_local_sweep_reads_the_objective_a_vertex_or_azure_script_reports(tmp_path: Path, script: str) -> None:
    from cloudtrain.sweeps.local import LocalSweep

    job = Job.from_file(write_job(tmp_path, script))
    sweep = LocalSweep(job._loaded, Runner(), seed=5)
    final = sweep.run()
    assert final.complete == 3, [t.user_attrs for t in sweep.study.get_trials()]
    run_dirs = set()
    for trial in sweep.study.get_trials():
        assert trial.value == pytest.approx(expected(trial.params, 3))  # the last report: epoch 3's
        assert trial.intermediate_values == pytest.approx({epoch: expected(trial.params, epoch) for epoch in (1, 2, 3)})
        record = Runner().store.resolve(trial.user_attrs["job_id"])
        run_dirs.add(record.details["run_dir"])
        # the same reports are the trial's run's metrics
        assert Run.from_record(record, Runner()).metrics["my_loss"] == pytest.approx(trial.value)
    assert len(run_dirs) == 3
    if script is HYPERTUNE_SCRIPT:  # each trial wrote its own file, in its run directory
        for run_dir in run_dirs:
            assert [r.step for r in hypertune_reports(Path(run_dir) / HYPERTUNE_LOCAL, "my_loss")] == [1, 2, 3]


def test_the_hypertune_tail_takes_each_report_once_past_the_files_last_100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hypertune

    path = tmp_path / HYPERTUNE_LOCAL
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(path))
    reporter = hypertune.HyperTune()
    tail = MetricTail(tmp_path, "acc")
    taken: list[float] = []
    for index in range(130):
        reporter.report_hyperparameter_tuning_metric(hyperparameter_metric_tag="acc", metric_value=index, global_step=index)
        if index % 7 == 0 or index > 120:  # read now and then, as a sweep polls
            taken += [value for _, value in tail.read()]
    taken += [value for _, value in tail.read()]
    assert len(path.read_text().splitlines()) == 100  # the package keeps its last 100 reports
    assert taken == [float(i) for i in range(130)]
    assert tail.read() == []


def test_reports_with_the_same_timestamp_are_each_taken_once(tmp_path: Path) -> None:
    from cloudtrain.runtime.context import hypertune_line

    path = tmp_path / HYPERTUNE_LOCAL
    path.parent.mkdir(parents=True)
    lines = [hypertune_line("acc", value, step) for step, value in enumerate([0.1, 0.2, 0.3], start=1)]
    same = [line.replace(line.split('"timestamp": ')[1].split(",")[0], "1000.5") for line in lines]
    tail = MetricTail(tmp_path, "acc")
    path.write_text("\n".join(same[:2]) + "\n")
    assert [v for _, v in tail.read()] == [0.1, 0.2]
    path.write_text("\n".join(same) + "\n")
    assert [v for _, v in tail.read()] == [0.3]
    assert tail.read() == []


def test_metrics_jsonl_is_the_source_once_it_has_the_metric(tmp_path: Path) -> None:
    """A value reported two ways (cloudtrain's log_metric, which also reports to a cloud's service) counts once."""
    import json

    from cloudtrain.runtime.context import hypertune_line, metric_record

    (tmp_path / "metrics.jsonl").write_text(json.dumps(metric_record("acc", 0.5)) + "\n")
    (tmp_path / HYPERTUNE_LOCAL).parent.mkdir(parents=True)
    (tmp_path / HYPERTUNE_LOCAL).write_text(hypertune_line("acc", 0.5, 1) + "\n")
    tail = MetricTail(tmp_path, "acc")
    assert tail.read() == [(1, 0.5)] and tail.source == "metrics.jsonl"
    (tmp_path / HYPERTUNE_LOCAL).write_text(hypertune_line("acc", 0.5, 1) + "\n" + hypertune_line("acc", 0.7, 2) + "\n")
    assert tail.read() == []  # the other source is not read any more
    assert last_values(tmp_path) == {"acc": 0.5}


def test_mlflow_store_is_read_in_logging_order_without_mlflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "mlflow.db"
    assert mlflow_reports(db, "acc") == [] and last_values(tmp_path) == {}  # no store yet
    code = ("import mlflow\nfor step, v in [(3, 0.1), (1, 0.4), (2, float('nan'))]: mlflow.log_metric('acc', v, step=step)\n"
            "mlflow.log_metric('loss', 2.5)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    reports = mlflow_reports(db, "acc")
    assert [r.step for r in reports] == [3, 1, 2] and reports[0].value == 0.1 and reports[1].value == 0.4
    assert reports[2].value != reports[2].value  # NaN stays NaN
    values = last_values(tmp_path)
    assert values["loss"] == 2.5 and set(values) == {"acc", "loss"}


def test_a_report_with_a_step_that_is_not_a_finite_number_is_read_at_step_0(tmp_path: Path) -> None:
    path = tmp_path / HYPERTUNE_LOCAL
    path.parent.mkdir(parents=True)
    lines = ['{"acc": "0.5", "global_step": "nan", "timestamp": 1.0}', '{"acc": "0.6", "global_step": "1e400", "timestamp": 2.0}',
             '{"acc": "0.7", "global_step": "3", "timestamp": 3.0}']
    path.write_text("\n".join(lines) + "\n")
    assert [(r.value, r.step) for r in hypertune_reports(path, "acc")] == [(0.5, 0), (0.6, 0), (0.7, 3)]


def test_each_simulated_node_has_its_own_hypertune_file_and_the_first_is_read(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text("name: nodes\ncode: .\nentrypoint: train.py\nresources: {nodes: 2}\n"
                                       "distribution: {type: torchrun}\n")
    runner = Runner()
    request = runner.provider("local").render(runner.plan(Job.from_file(tmp_path / "job.yaml")._loaded, "local"))
    run_dir = Path(request.payload["run_dir"])
    files = [node["env"]["CLOUD_ML_HP_METRIC_FILE"] for node in request.payload["nodes"]]
    assert files == [str(run_dir / HYPERTUNE_LOCAL), str(run_dir / "hypertune" / "node-1" / "output.metrics")]
