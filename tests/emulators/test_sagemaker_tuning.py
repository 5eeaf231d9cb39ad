"""SageMaker hyperparameter tuning jobs in the emulator, driven by plain boto3 over HTTP on 127.0.0.1.

The trials run a tiny script whose objective is a known function of its hyperparameters: it prints
``loss: (x - 3) ** 2``; its ``mode`` hyperparameter makes it crash after printing a better loss,
finish without printing one, wait for a stop, or (``curve``) go on after a poor loss until
stopped. Nothing waits for time: tests poll the API.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import json
import math
import re
import tarfile
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from cloudtrain.emulators.common import wait_until  # noqa: E402
from cloudtrain.emulators.sagemaker import SageMakerEmulator  # noqa: E402
from cloudtrain.emulators.sagemaker_tuning_space import parse_ranges, sampler_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TIMEOUT = 120.0
OBJECTIVE_REGEX = r"loss: ([-0-9.eE+]+)"

SCRIPT = textwrap.dedent('''
    import signal, sys
    from cloudtrain.runtime import context

    ctx = context()
    mode, x = ctx.hp("mode", "ok"), ctx.hp("x", 0.0)
    if mode == "crash":
        print("loss: -1.0", flush=True)  # better than any real trial, then the script fails
        raise RuntimeError("diverged")
    if mode == "silent":
        print("finished without an objective", flush=True)
        sys.exit(0)
    if mode == "wait":
        print("ready for a stop", flush=True)
        signal.pause()
    if mode == "curve":  # the first trial does well; the next ones do poorly and would go on until stopped
        from pathlib import Path
        first = Path(ctx.hp("marker", ""))
        if not first.exists():
            first.write_text("ran")
            print("loss: 0.0", flush=True)
            sys.exit(0)
        print("loss: 49.0", flush=True)
        signal.pause()
    print(f"loss: {(x - 3) ** 2!r}", flush=True)
''')


def code_bundle() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in [REPO / "cloudtrain" / "__init__.py", *sorted((REPO / "cloudtrain" / "runtime").glob("*.py"))]:
            archive.add(path, arcname=path.relative_to(REPO).as_posix())
        data = SCRIPT.encode()
        info = tarfile.TarInfo("tune.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerEmulator]:
    # proxy_passthrough=False: the SDK's calls to AWS hostnames reach the emulator, any other host is refused
    with SageMakerEmulator(root=tmp_path_factory.mktemp("sm-tuning"), stop_grace_seconds=5, proxy_passthrough=False) as running:
        yield running


@pytest.fixture(scope="module")
def aws(emulator: SageMakerEmulator) -> SimpleNamespace:
    options = dict(endpoint_url=emulator.endpoint_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                   region_name="us-east-1")
    clients = SimpleNamespace(**{name: boto3.client(name, **options) for name in ("sagemaker", "s3", "logs")})
    clients.s3.put_object(Bucket=emulator.bucket, Key="tuning/sourcedir.tar.gz", Body=code_bundle())
    return clients


@pytest.fixture(autouse=True)
def no_faults_left(emulator: SageMakerEmulator) -> Iterator[None]:
    emulator.faults.clear()
    yield
    emulator.faults.clear()


def tuning_request(emulator: SageMakerEmulator, strategy: str, ranges: dict[str, Any], maximum: int | None,
                   parallel: int, **static: str) -> dict[str, Any]:
    """Shaped like cloudtrain's own request (cloudtrain.sweeps.sagemaker.build_tuning_request)."""
    limits = {"MaxParallelTrainingJobs": parallel, **({"MaxNumberOfTrainingJobs": maximum} if maximum else {})}
    return dict(
        HyperParameterTuningJobName=f"tune-{strategy.lower()}-{uuid.uuid4().hex[:8]}",
        HyperParameterTuningJobConfig={
            "Strategy": strategy, "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": limits, "ParameterRanges": ranges, "TrainingJobEarlyStoppingType": "Off", "RandomSeed": 7},
        TrainingJobDefinition={
            "StaticHyperParameters": {"sagemaker_program": "tune.py", "sagemaker_region": "us-east-1",
                                      "sagemaker_submit_directory": f"s3://{emulator.bucket}/tuning/sourcedir.tar.gz",
                                      **static},
            "AlgorithmSpecification": {"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
                                       "TrainingInputMode": "File",
                                       "MetricDefinitions": [{"Name": "loss", "Regex": OBJECTIVE_REGEX}]},
            "RoleArn": emulator.role_arn,
            "OutputDataConfig": {"S3OutputPath": f"s3://{emulator.bucket}/tuning-output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}},
        Tags=[{"Key": "team", "Value": "vision"}])


def wait_ended(aws: SimpleNamespace, name: str) -> dict[str, Any]:
    return wait_until(lambda: (d := aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))
                      ["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped") and d, TIMEOUT,
                      what=f"tuning job {name} to end")


def trials(aws: SimpleNamespace, name: str, **options: Any) -> list[dict[str, Any]]:
    pages = aws.sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, **options)
    return [summary for page in pages for summary in page["TrainingJobSummaries"]]


def printed_losses(aws: SimpleNamespace, trial: str, regex: str = OBJECTIVE_REGEX) -> list[float]:
    streams = aws.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{trial}/")["logStreams"]
    lines = [e["message"] for s in streams for e in aws.logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=s["logStreamName"], startFromHead=True)["events"]]
    return [float(m.group(1)) for line in lines if (m := re.search(regex, line))]


@pytest.fixture(scope="module")
def random_search(emulator: SageMakerEmulator, aws: SimpleNamespace) -> SimpleNamespace:
    """Random search over x in [0, 6] (the loss is smallest at 3): 6 trials, 2 at a time."""
    request = tuning_request(emulator, "Random", {
        "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "6", "ScalingType": "Linear"}],
        "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "3"}]}, 6, 2)
    name = request["HyperParameterTuningJobName"]
    arn = aws.sagemaker.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    final = wait_ended(aws, name)
    return SimpleNamespace(name=name, arn=arn, request=request, final=final, trials=trials(aws, name, MaxResults=4))


def test_random_search_runs_every_trial(random_search: SimpleNamespace) -> None:
    assert random_search.final["HyperParameterTuningJobStatus"] == "Completed"
    assert len(random_search.trials) == 6
    assert all(t["TrainingJobStatus"] == "Completed" and t["ObjectiveStatus"] == "Succeeded" for t in random_search.trials)
    assert all(re.fullmatch(rf"{random_search.name}-00[1-6]-[0-9a-f]{{8}}", t["TrainingJobName"]) for t in random_search.trials)
    for trial in random_search.trials:
        tuned = trial["TunedHyperParameters"]
        assert set(tuned) == {"x", "epochs"} and 0 <= float(tuned["x"]) <= 6 and tuned["epochs"] in ("1", "2", "3")
    assert len({t["TunedHyperParameters"]["x"] for t in random_search.trials}) == 6


def test_each_objective_is_what_the_trial_printed(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    for trial in random_search.trials:
        value = trial["FinalHyperParameterTuningJobObjectiveMetric"]
        assert value["MetricName"] == "loss" and value["Type"] == "Minimize"
        assert value["Value"] == (float(trial["TunedHyperParameters"]["x"]) - 3) ** 2
        assert printed_losses(aws, trial["TrainingJobName"]) == [value["Value"]]


def test_best_training_job_is_the_true_minimum(random_search: SimpleNamespace) -> None:
    best = random_search.final["BestTrainingJob"]
    values = {t["TrainingJobName"]: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in random_search.trials}
    assert best["TrainingJobName"] == min(values, key=values.get)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(values.values())
    assert best["TunedHyperParameters"] == next(t["TunedHyperParameters"] for t in random_search.trials
                                                if t["TrainingJobName"] == best["TrainingJobName"])


def test_counters_agree_with_the_trials(random_search: SimpleNamespace) -> None:
    assert random_search.final["TrainingJobStatusCounters"] == {
        "Completed": 6, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    assert random_search.final["ObjectiveStatusCounters"] == {"Succeeded": 6, "Pending": 0, "Failed": 0}
    assert random_search.final["HyperParameterTuningEndTime"] >= random_search.final["CreationTime"]


def test_at_most_max_parallel_trials_ran_at_once(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    described = [aws.sagemaker.describe_training_job(TrainingJobName=t["TrainingJobName"]) for t in random_search.trials]
    events = sorted([(d["CreationTime"], 1) for d in described] + [(d["TrainingEndTime"], -1) for d in described],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2


def test_trials_are_training_jobs_of_the_tuning_job(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    trial = random_search.trials[0]
    described = aws.sagemaker.describe_training_job(TrainingJobName=trial["TrainingJobName"])
    assert described["TuningJobArn"] == random_search.arn
    assert described["HyperParameters"] == {**random_search.request["TrainingJobDefinition"]["StaticHyperParameters"],
                                            **trial["TunedHyperParameters"]}
    assert [m for m in described["FinalMetricDataList"] if m["MetricName"] == "loss"][0]["Value"] == \
        trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


def test_trials_sort_by_objective_and_filter_by_status(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    ranked = trials(aws, random_search.name, SortBy="FinalObjectiveMetricValue", SortOrder="Ascending")
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in ranked]
    assert values == sorted(values) and ranked[0]["TrainingJobName"] == random_search.final["BestTrainingJob"]["TrainingJobName"]
    by_name = trials(aws, random_search.name, SortOrder="Descending")
    assert [t["TrainingJobName"] for t in by_name] == sorted((t["TrainingJobName"] for t in ranked), reverse=True)
    assert trials(aws, random_search.name, StatusEquals="Failed") == []


def test_list_tuning_jobs_shows_it(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    summaries = aws.sagemaker.list_hyper_parameter_tuning_jobs(NameContains=random_search.name)["HyperParameterTuningJobSummaries"]
    assert [(s["HyperParameterTuningJobArn"], s["HyperParameterTuningJobStatus"], s["Strategy"]) for s in summaries] == [
        (random_search.arn, "Completed", "Random")]
    assert summaries[0]["ObjectiveStatusCounters"]["Succeeded"] == 6


def test_tuning_job_tags_are_its_own(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    assert aws.sagemaker.list_tags(ResourceArn=random_search.arn)["Tags"] == [{"Key": "team", "Value": "vision"}]
    aws.sagemaker.add_tags(ResourceArn=random_search.arn, Tags=[{"Key": "stage", "Value": "dev"}])
    aws.sagemaker.delete_tags(ResourceArn=random_search.arn, TagKeys=["team"])
    assert aws.sagemaker.list_tags(ResourceArn=random_search.arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    trial = random_search.trials[0]["TrainingJobArn"]
    assert aws.sagemaker.list_tags(ResourceArn=trial)["Tags"] == [{"Key": "team", "Value": "vision"}]  # moto's, untouched


def test_grid_enumerates_the_values_and_never_picks_a_trial_that_failed(emulator: SageMakerEmulator,
                                                                      aws: SimpleNamespace) -> None:
    request = tuning_request(emulator, "Grid", {"CategoricalParameterRanges": [
        {"Name": "mode", "Values": ["ok", "crash", "silent"]}, {"Name": "x", "Values": ["1", "4"]}]}, None, 3)
    name = request["HyperParameterTuningJobName"]
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    final = wait_ended(aws, name)
    ran = trials(aws, name)
    assert sorted((t["TunedHyperParameters"]["mode"], t["TunedHyperParameters"]["x"]) for t in ran) == sorted(
        (mode, x) for mode in ("ok", "crash", "silent") for x in ("1", "4"))
    status = {(t["TunedHyperParameters"]["mode"], t["ObjectiveStatus"], t["TrainingJobStatus"]) for t in ran}
    assert status == {("ok", "Succeeded", "Completed"), ("crash", "Failed", "Failed"), ("silent", "Failed", "Completed")}
    assert all(printed_losses(aws, t["TrainingJobName"]) == [-1.0] for t in ran if t["TunedHyperParameters"]["mode"] == "crash")
    assert final["HyperParameterTuningJobStatus"] == "Completed"
    assert final["BestTrainingJob"]["TunedHyperParameters"] == {"mode": "ok", "x": "4"}  # loss 1 < 4; the crash's -1 is no result
    assert final["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 1.0
    assert final["TrainingJobStatusCounters"] == {"Completed": 4, "InProgress": 0, "RetryableError": 0,
                                                  "NonRetryableError": 2, "Stopped": 0}
    assert final["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 4}
    assert [t["TunedHyperParameters"]["x"] for t in trials(aws, name, SortBy="FinalObjectiveMetricValue")] == ["4", "1"]


def test_bayesian_search_as_cloudtrain_sends_it(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    """cloudtrain's tpe + median early stopping: Bayesian, TrainingJobEarlyStoppingType Auto, a log scale."""
    request = tuning_request(emulator, "Bayesian", {
        "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0.5", "MaxValue": "6", "ScalingType": "Logarithmic"}],
        "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "30", "ScalingType": "Logarithmic"}]}, 4, 2)
    request["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] = "Auto"
    request["Tags"] += [{"Key": "cloudtrain:job", "Value": "tune-x"}, {"Key": "cloudtrain:submission", "Value": "abc123"}]
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    final = wait_ended(aws, request["HyperParameterTuningJobName"])
    ran = trials(aws, request["HyperParameterTuningJobName"])
    assert final["HyperParameterTuningJobStatus"] == "Completed" and len(ran) == 4
    values = {t["TrainingJobName"]: (float(t["TunedHyperParameters"]["x"]) - 3) ** 2 for t in ran}
    assert final["BestTrainingJob"]["TrainingJobName"] == min(values, key=values.get)
    assert all(0.5 <= float(t["TunedHyperParameters"]["x"]) <= 6 and 1 <= int(t["TunedHyperParameters"]["epochs"]) <= 30
               for t in ran)


def test_auto_early_stopping_stops_a_trial_worse_than_the_median_of_the_earlier_ones(emulator: SageMakerEmulator,
                                                                                     aws: SimpleNamespace, tmp_path: Path) -> None:
    request = tuning_request(emulator, "Random", {"ContinuousParameterRanges": [
        {"Name": "x", "MinValue": "0", "MaxValue": "6", "ScalingType": "Linear"}]}, 2, 1, mode="curve",
        marker=str(tmp_path / "first-trial-ran"))
    request["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] = "Auto"
    name = request["HyperParameterTuningJobName"]
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    final = wait_ended(aws, name)  # without early stopping the second trial never ends
    first, second = sorted(trials(aws, name), key=lambda t: t["TrainingJobName"])
    assert (first["TrainingJobStatus"], second["TrainingJobStatus"]) == ("Completed", "Stopped")
    assert printed_losses(aws, second["TrainingJobName"]) == [49.0]  # worse than the first trial's 0.0
    assert final["HyperParameterTuningJobStatus"] == "Completed"
    assert final["BestTrainingJob"]["TrainingJobName"] == first["TrainingJobName"]
    assert final["TrainingJobStatusCounters"]["Stopped"] == 1
    # judged on its objective, which the tuning job then keeps (it was evaluated, and used)
    assert second["ObjectiveStatus"] == "Succeeded" and second["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 49.0


def test_target_objective_value_ends_the_search(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = tuning_request(emulator, "Grid", {"CategoricalParameterRanges": [
        {"Name": "x", "Values": ["3", "5", "1", "4"]}]}, None, 1)
    request["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {"TargetObjectiveMetricValue": 0.5}
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    final = wait_ended(aws, request["HyperParameterTuningJobName"])
    assert final["HyperParameterTuningJobStatus"] == "Completed"
    assert [t["TunedHyperParameters"] for t in trials(aws, request["HyperParameterTuningJobName"])] == [{"x": "3"}]


def test_a_create_retried_after_a_dropped_connection_creates_one_tuning_job(emulator: SageMakerEmulator,
                                                                              aws: SimpleNamespace) -> None:
    request = tuning_request(emulator, "Grid", {"CategoricalParameterRanges": [{"Name": "x", "Values": ["2"]}]}, None, 1)
    emulator.drop_connection_after(1, "SageMaker.CreateHyperParameterTuningJob")
    code, text = refusal(aws.sagemaker.create_hyper_parameter_tuning_job, **request)  # botocore retried the dropped call
    assert code == "ResourceInUse" and "already exists" in text
    assert emulator.faults.injected == [("drop_after", "SageMaker.CreateHyperParameterTuningJob")]
    final = wait_ended(aws, request["HyperParameterTuningJobName"])
    assert final["HyperParameterTuningJobStatus"] == "Completed"
    assert len(trials(aws, request["HyperParameterTuningJobName"])) == 1


def test_no_objective_from_any_trial_fails_the_tuning_job(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = tuning_request(emulator, "Random", {"CategoricalParameterRanges": [
        {"Name": "mode", "Values": ["crash", "silent"]}]}, 2, 2)
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    final = wait_ended(aws, request["HyperParameterTuningJobName"])
    assert final["HyperParameterTuningJobStatus"] == "Failed" and "loss" in final["FailureReason"]
    assert "BestTrainingJob" not in final
    assert final["ObjectiveStatusCounters"] == {"Succeeded": 0, "Pending": 0, "Failed": 2}


def test_stop_stops_the_running_trials(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = tuning_request(emulator, "Random", {"ContinuousParameterRanges": [
        {"Name": "x", "MinValue": "0", "MaxValue": "6"}]}, 5, 2, mode="wait")
    name = request["HyperParameterTuningJobName"]
    aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    started = wait_until(lambda: len(t := trials(aws, name)) == 2 and all(
        "ready for a stop" in str(printed_lines(aws, s["TrainingJobName"])) for s in t) and t, TIMEOUT, what="two trials running")
    aws.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    final = wait_ended(aws, name)
    assert final["HyperParameterTuningJobStatus"] == "Stopped"
    ended = trials(aws, name)
    assert sorted(t["TrainingJobName"] for t in ended) == sorted(t["TrainingJobName"] for t in started)
    assert {t["TrainingJobStatus"] for t in ended} == {"Stopped"}
    assert final["TrainingJobStatusCounters"]["Stopped"] == 2 and "BestTrainingJob" not in final
    with pytest.raises(ClientError) as again:
        aws.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert again.value.response["Error"]["Code"] == "ValidationException"


def printed_lines(aws: SimpleNamespace, trial: str) -> list[str]:
    streams = aws.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{trial}/")["logStreams"]
    return [e["message"] for s in streams for e in aws.logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=s["logStreamName"], startFromHead=True)["events"]]


def send_as_is(emulator: SageMakerEmulator, request: dict[str, Any]) -> Any:
    """A boto3 CreateHyperParameterTuningJob whose JSON body is ``request`` exactly, members botocore
    cannot serialize included (as a client of another SDK, or an older botocore, might send)."""
    client = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1", config=Config(parameter_validation=False))
    client.meta.events.register("before-sign.sagemaker.CreateHyperParameterTuningJob",
                                lambda request, **kwargs: setattr(request, "data", json.dumps(body).encode()))
    body = request
    minimal = {key: request[key] for key in ("HyperParameterTuningJobName", "HyperParameterTuningJobConfig")}
    minimal["HyperParameterTuningJobConfig"] = {"Strategy": "Random", "ResourceLimits": {"MaxParallelTrainingJobs": 1}}
    return client.create_hyper_parameter_tuning_job(**minimal)


def refusal(call: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as error:
        call(**request)
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


@pytest.mark.parametrize("change, message", [
    (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"].update(
        FloatParameterRanges=[{"Name": "y", "MinValue": "0", "MaxValue": "1"}]), "FloatParameterRanges"),
    (lambda r: r["HyperParameterTuningJobConfig"]["ResourceLimits"].update(MaxParallelTrainingJobs=7), "MaxParallelTrainingJobs"),
    (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Evolutionary"), "enum value set"),
    (lambda r: r["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"].update(MetricName="accuracy"), "accuracy"),
    (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0].update(
        MinValue="-1", ScalingType="Logarithmic"), "Logarithmic"),
    (lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].update(x="1"), "both tunable and static"),
    (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Grid"), "categorical"),
    (lambda r: r["TrainingJobDefinition"]["ResourceConfig"].update(InstanceType="ml.imaginary.huge"), "instanceType"),
    (lambda r: r.update(HyperParameterTuningJobName="a-name-that-is-longer-than-32-chars"), "hyperParameterTuningJobName"),
    (lambda r: r["HyperParameterTuningJobConfig"]["ResourceLimits"].pop("MaxNumberOfTrainingJobs"), "MaxNumberOfTrainingJobs"),
    (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto"), "Off"),
    (lambda r: r.update(TrainingJobDefinitions=[r["TrainingJobDefinition"]]), "TrainingJobDefinitions"),
])
def test_invalid_requests_are_refused(emulator: SageMakerEmulator, aws: SimpleNamespace, change: Any, message: str) -> None:
    request = tuning_request(emulator, "Random", {"ContinuousParameterRanges": [
        {"Name": "x", "MinValue": "0", "MaxValue": "6"}]}, 4, 2)
    change(request)
    code, text = refusal(lambda **r: send_as_is(emulator, r), **request)
    assert code == "ValidationException" and message in text
    assert refusal(aws.sagemaker.describe_hyper_parameter_tuning_job,
                   HyperParameterTuningJobName=request["HyperParameterTuningJobName"])[0] == "ResourceNotFound"


def test_a_name_already_used_is_refused(aws: SimpleNamespace, random_search: SimpleNamespace) -> None:
    code, text = refusal(aws.sagemaker.create_hyper_parameter_tuning_job, **random_search.request)
    assert code == "ResourceInUse" and random_search.arn in text
    shouted = {**random_search.request, "HyperParameterTuningJobName": random_search.name.upper()}
    assert refusal(aws.sagemaker.create_hyper_parameter_tuning_job, **shouted)[0] == "ResourceInUse"
    assert len(trials(aws, random_search.name)) == 6


def test_faults_apply_to_tuning_operations(emulator: SageMakerEmulator, aws: SimpleNamespace,
                                           random_search: SimpleNamespace) -> None:
    emulator.throttle(1, "SageMaker.DescribeHyperParameterTuningJob")
    bare = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    code, _ = refusal(bare.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName=random_search.name)
    assert code == "ThrottlingException"
    assert emulator.faults.injected == [("throttle", "SageMaker.DescribeHyperParameterTuningJob")]


def test_samplers_honour_the_scaling_type() -> None:
    parameters = parse_ranges({"ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        {"Name": "beta", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"},
        {"Name": "dropout", "MinValue": "0", "MaxValue": "0.5", "ScalingType": "Linear"}]}, {})
    sampler = sampler_for("Random", parameters, 3, maximize=False)
    draws = [sampler.propose()[1] for _ in range(3000)]
    share = lambda name, test: sum(test(float(d[name])) for d in draws) / len(draws)  # noqa: E731
    assert share("lr", lambda v: v < 0.01) == pytest.approx(2 / 3, abs=0.04)  # two of the three decades
    assert share("beta", lambda v: v > 0.99) == pytest.approx(1 / 2, abs=0.04)  # 1 - beta: one of two decades
    assert share("dropout", lambda v: v < 0.25) == pytest.approx(1 / 2, abs=0.04)
    assert all(1e-4 <= float(d["lr"]) <= 0.1 and 0.9 <= float(d["beta"]) <= 0.999 for d in draws)


def test_bayesian_sampler_learns_from_the_trials() -> None:
    parameters = parse_ranges({"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "6"}]}, {})
    sampler = sampler_for("Bayesian", parameters, 5, maximize=False)
    values = []
    for _ in range(30):
        ticket, proposal = sampler.propose()
        values.append(float(proposal["x"]))
        sampler.tell(ticket, (values[-1] - 3) ** 2)
    late = sum(abs(v - 3) < 0.5 for v in values[15:])
    assert late > 15 * (1 / 6) * 2  # TPE, once warmed up, samples near the minimum far more than uniform would
    assert math.isclose(min(values, key=lambda v: abs(v - 3)), 3, abs_tol=0.3)


SDK_TRAIN = """
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--width", type=float, required=True)
parser.add_argument("--epochs", type=int, default=1)
args, _ = parser.parse_known_args()
print(f"loss={(args.width - 3) ** 2!r}", flush=True)
"""

SDK_TUNE = """
import json
from pathlib import Path
from sagemaker.core.parameter import ContinuousParameter
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, SourceCode
from sagemaker.train.tuner import HyperparameterTuner

trainer = ModelTrainer(
    training_image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
    source_code=SourceCode(source_dir=str(Path(__file__).parent / "src"), entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.xlarge", instance_count=1), hyperparameters={"epochs": 2}, base_job_name="sdk-tune")
tuner = HyperparameterTuner(
    model_trainer=trainer, objective_metric_name="loss", objective_type="Minimize",
    metric_definitions=[{"Name": "loss", "Regex": r"loss=([-0-9.eE+]+)"}],
    hyperparameter_ranges={"width": ContinuousParameter(0.0, 6.0)}, strategy="Random", max_jobs=4, max_parallel_jobs=2)
tuner.tune(wait=False)
tuner.latest_tuning_job.wait(poll=1)
print(json.dumps({"tuning_job": tuner.latest_tuning_job.hyper_parameter_tuning_job_name, "best": tuner.best_training_job()}))
"""


def test_the_sagemaker_sdk_tuner_runs_unchanged(emulator: SageMakerEmulator, aws: SimpleNamespace, tmp_path: Path) -> None:
    """A user's SDK v3 HyperparameterTuner script, with nothing but the variables the emulator exports."""
    pytest.importorskip("sagemaker.train.tuner")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(SDK_TRAIN)
    (tmp_path / "tune.py").write_text(SDK_TUNE)
    with socket.socket() as holder:  # plain HTTP goes to a loopback port that refuses connections
        holder.bind(("127.0.0.1", 0))
        refusing = f"http://127.0.0.1:{holder.getsockname()[1]}"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **emulator.environment(),
               "AWS_EC2_METADATA_DISABLED": "true", "HTTP_PROXY": refusing, "http_proxy": refusing}
        done = subprocess.run([sys.executable, str(tmp_path / "tune.py")], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    ran = trials(aws, reported["tuning_job"])
    assert len(ran) == 4 and {t["TrainingJobStatus"] for t in ran} == {"Completed"}
    losses = {t["TrainingJobName"]: printed_losses(aws, t["TrainingJobName"], r"loss=([-0-9.eE+]+)") for t in ran}
    assert all(losses[t["TrainingJobName"]] == [(float(t["TunedHyperParameters"]["width"]) - 3) ** 2] for t in ran)
    assert reported["best"] == min(losses, key=losses.get)
