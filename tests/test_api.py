"""The public Python API: cloudtrain.Job, Run and runs(), on the digits example and a tiny job."""

from __future__ import annotations

from pathlib import Path

import pytest

import cloudtrain
from cloudtrain.errors import SpecError, UsageError
from cloudtrain.providers import JobState

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits-sklearn.yaml"
CLOUD_SETTINGS = {
    "sagemaker.role_arn": "arn:aws:iam::123456789012:role/Training", "sagemaker.bucket": "my-bucket",
    "azureml.subscription_id": "00000000-0000-0000-0000-000000000000", "azureml.resource_group": "rg",
    "azureml.workspace": "ws", "vertex.project": "my-project", "vertex.staging_bucket": "gs://my-bucket",
}


def test_digits_example_runs_locally_with_metrics() -> None:
    job = cloudtrain.Job.from_file(EXAMPLE, overrides={"hyperparameters.n_estimators": 20})
    run = job.run()
    assert run.state is JobState.SUCCEEDED and run.cloud == "local"
    assert 0.8 < run.metrics["test_accuracy"] <= 1.0
    assert any("test accuracy" in line for line in run.logs())
    assert [r.id for r in cloudtrain.runs()] == [run.id]
    assert cloudtrain.runs(cloud="sagemaker") == []


@pytest.mark.parametrize("cloud, key", [("sagemaker", "TrainingJobName"), ("azureml", "command"), ("vertex", "jobSpec")])
def test_dry_run_on_each_cloud_is_the_native_request(cloud: str, key: str) -> None:
    job = cloudtrain.Job.from_file(EXAMPLE, overrides=CLOUD_SETTINGS)
    request = job.dry_run(cloud)
    assert request.cloud == cloud and key in request.payload
    assert cloudtrain.runs() == []  # a dry run records nothing


def test_estimate_rows_match_the_plans() -> None:
    job = cloudtrain.Job.from_file(EXAMPLE, overrides={**CLOUD_SETTINGS, "resources.nodes": 2, "distribution.type": "tensorflow"})
    rows = list(job.estimate())
    assert {row.cloud for row in rows} == {"sagemaker", "azureml", "vertex"}
    priced = [row for row in rows if row.priced]
    assert priced and rows[:len(priced)] == sorted(priced, key=lambda r: r.max_total_usd)  # unpriced ones last
    for row in rows:
        plan = job.plan(row.cloud)
        assert (plan.instance_type, plan.nodes, plan.region) == (row.instance_type, 2, row.region)
        if row.priced:
            assert plan.estimate.max_total_usd == row.max_total_usd == round(row.usd_per_hour * 0.5, 2)
        else:
            assert plan.estimate.max_total_usd is row.max_total_usd is None
    assert [row.cloud for row in job.estimate("vertex")] == ["vertex"]
    with pytest.raises(UsageError, match="unknown cloud 'sagemakr'"):
        job.estimate("sagemakr")


def test_job_from_keyword_arguments(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("from cloudtrain.runtime import context\n"
                                       "ctx = context()\nctx.log_metric('lr_seen', ctx.hp('lr', 0.0))\n")
    job = cloudtrain.Job(name="kw", code=".", entrypoint="train.py", hyperparameters={"lr": 0.5}, base_dir=tmp_path)
    assert job.spec.code == str(tmp_path.resolve())
    run = job.run()
    assert run.state is JobState.SUCCEEDED and run.metrics == {"lr_seen": 0.5}
    again = cloudtrain.Run(run.id)
    assert again.status().state is JobState.SUCCEEDED and again.wait(timeout=5).state is JobState.SUCCEEDED
    with pytest.raises(SpecError, match="sagemaker.bucket"):
        cloudtrain.Job(name="kw", code=".", entrypoint="train.py", sagemaker={"bucket": 3}, base_dir=tmp_path)
    with pytest.raises(SpecError, match="entrypoint: missing.py not found"):
        cloudtrain.Job(name="kw", code=".", entrypoint="missing.py", base_dir=tmp_path)
