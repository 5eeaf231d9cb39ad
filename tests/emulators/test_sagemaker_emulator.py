"""The SageMaker emulator driven by plain boto3 clients over HTTP on 127.0.0.1, as a user would.

One emulator serves the module; each test creates its own jobs (unique names) and clears faults.
The training script's behaviour is chosen by its ``mode`` hyperparameter; where a test must see a
job in a given state, the script waits for a file the test creates (or for a signal), so nothing
here depends on timing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
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

from cloudtrain.emulators.common import Faults, wait_until  # noqa: E402
from cloudtrain.emulators.sagemaker import SageMakerEmulator  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TIMEOUT = 30.0

SCRIPT = textwrap.dedent('''
    import json, os, signal, sys, time
    from pathlib import Path
    from cloudtrain.runtime import context

    ctx = context()
    mode = ctx.hp("mode", "basic")
    print(f"host={os.environ.get('SM_CURRENT_HOST')} rank={ctx.rank} world={ctx.world_size} mode={mode}", flush=True)

    def wait_for(predicate, what, seconds=30.0):
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                sys.exit(f"TimeoutError: gave up waiting for {what}")
            time.sleep(0.02)

    if mode == "basic":
        gate = ctx.hp("gate", "")
        if gate:
            wait_for(lambda: Path(gate).exists(), "the gate file")
        report = {"env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "CT_", "CLOUDTRAIN_", "TRAINING_JOB", "PYTHONPATH"))},
                  "argv": sys.argv[1:], "cwd": os.getcwd(), "hps": ctx.hyperparameters, "rank": ctx.rank,
                  "inputs": {k: sorted(os.listdir(v)) for k, v in ctx.inputs.items()}}
        if ctx.is_main:
            (ctx.model_dir / "model.json").write_text(json.dumps(report))
        ctx.log_metric("val_loss", 0.25, step=1)
    elif mode == "fail":
        raise ValueError("boom: learning rate must be positive")
    elif mode == "wait_for_stop":
        def on_term(signum, frame):
            (ctx.model_dir / "stopped.txt").write_text("saved on SIGTERM")
            print("got SIGTERM, model saved", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready for a stop", flush=True)
        wait_for(lambda: False, "a stop")
    elif mode == "spot":
        state = ctx.checkpoint_dir / "state.json"
        resumed = state.exists()
        start = json.loads(state.read_text())["epoch"] if resumed else 0
        print(f"starting at epoch {start} resumed={resumed}", flush=True)
        for epoch in range(start, 3):
            tmp = ctx.output_dir / "state.tmp"
            tmp.write_text(json.dumps({"epoch": epoch + 1}))
            os.replace(tmp, state)
            print(f"epoch {epoch + 1} checkpointed", flush=True)
            if not resumed:
                wait_for(lambda: False, "a spot interruption")
        (ctx.model_dir / "model.json").write_text(json.dumps({"resumed_from": start, "epochs": 3}))
    elif mode == "torch":
        import torch, torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.tensor([float(ctx.rank + 1)])
        dist.all_reduce(total)
        print(f"torch rank={dist.get_rank()} world={dist.get_world_size()} sum={total.item():g}", flush=True)
        dist.destroy_process_group()
''')


def code_bundle() -> bytes:
    """``sourcedir.tar.gz`` as the provider stages it: the runtime package and the script."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in [REPO / "cloudtrain" / "__init__.py", *sorted((REPO / "cloudtrain" / "runtime").glob("*.py"))]:
            archive.add(path, arcname=path.relative_to(REPO).as_posix())
        data = SCRIPT.encode()
        info = tarfile.TarInfo("_cloudtrain_entry.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerEmulator]:
    with SageMakerEmulator(root=tmp_path_factory.mktemp("sm-emulator"), stop_grace_seconds=5) as running:
        yield running


@pytest.fixture(scope="module")
def aws(emulator: SageMakerEmulator) -> SimpleNamespace:
    options = dict(endpoint_url=emulator.endpoint_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                   region_name="us-east-1", config=Config(retries={"mode": "standard"}))  # 3 attempts in all
    clients = SimpleNamespace(**{name: boto3.client(name, **options) for name in ("sagemaker", "s3", "logs")})
    clients.s3.put_object(Bucket=emulator.bucket, Key="code/sourcedir.tar.gz", Body=code_bundle())
    for key in ("data/train/part-0.csv", "data/train/part-1.csv"):
        clients.s3.put_object(Bucket=emulator.bucket, Key=key, Body=b"1,2\n3,4\n")
    return clients


@pytest.fixture(autouse=True)
def no_faults_left(emulator: SageMakerEmulator) -> Iterator[None]:
    emulator.faults.clear()
    yield
    emulator.faults.clear()


def job_request(emulator: SageMakerEmulator, mode: str = "basic", nodes: int = 1, **hps: str) -> dict[str, Any]:
    """A realistic request, shaped like the one the SageMaker provider sends."""
    bucket = emulator.bucket
    name = f"ct-{mode.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    return dict(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
                                "TrainingInputMode": "File",
                                "MetricDefinitions": [{"Name": "val_loss", "Regex": r"cloudtrain-metric name=val_loss value=([0-9.eE+-]+)"}]},
        RoleArn=emulator.role_arn,
        HyperParameters={"mode": json.dumps(mode), "epochs": "3", "lr": "0.01", "tag": '"demo"',
                         **{k: json.dumps(v) for k, v in hps.items()},
                         "sagemaker_program": "_cloudtrain_entry.py",
                         "sagemaker_submit_directory": f"s3://{bucket}/code/sourcedir.tar.gz",
                         "sagemaker_region": "us-east-1"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/train", "S3DataDistributionType": "FullyReplicated"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": nodes, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Environment={"CT_RUN": "1", "CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS": "60", "PYTHONPATH": "/srv/job-libs"},
    )


def describe(aws: SimpleNamespace, name: str) -> dict[str, Any]:
    return aws.sagemaker.describe_training_job(TrainingJobName=name)


def wait_ended(aws: SimpleNamespace, name: str) -> dict[str, Any]:
    return wait_until(lambda: (d := describe(aws, name))["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and d,
                      TIMEOUT, what=f"job {name} to end")


def log_lines(aws: SimpleNamespace, name: str) -> dict[str, list[str]]:
    """Stream name -> messages, for the job's streams."""
    streams = aws.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    return {s["logStreamName"]: [e["message"] for e in aws.logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=s["logStreamName"], startFromHead=True)["events"]] for s in streams}


def model_files(aws: SimpleNamespace, description: dict[str, Any]) -> dict[str, bytes]:
    bucket, _, key = description["ModelArtifacts"]["S3ModelArtifacts"][len("s3://"):].partition("/")
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def completed(emulator: SageMakerEmulator, aws: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One job seen InProgress (held there by a gate file) and then Completed."""
    gate = tmp_path_factory.mktemp("gate") / "open"
    request = job_request(emulator, gate=str(gate))
    aws.sagemaker.create_training_job(**request)
    name = request["TrainingJobName"]
    training = wait_until(lambda: (d := describe(aws, name))["SecondaryStatus"] == "Training" and d, TIMEOUT, what="Training")
    gate.write_text("go")
    final = wait_ended(aws, name)
    return SimpleNamespace(name=name, request=request, training=training, final=final,
                           report=json.loads(model_files(aws, final)["model.json"]))


def test_job_goes_in_progress_then_completed(completed: SimpleNamespace) -> None:
    assert completed.training["TrainingJobStatus"] == "InProgress"
    assert "ModelArtifacts" not in completed.training
    assert completed.final["TrainingJobStatus"] == "Completed"
    assert [t["Status"] for t in completed.final["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert completed.final["TrainingEndTime"] >= completed.final["TrainingStartTime"]


def test_describe_keeps_what_was_sent(completed: SimpleNamespace) -> None:
    assert completed.final["Environment"] == completed.request["Environment"]
    assert completed.final["AlgorithmSpecification"]["MetricDefinitions"] == completed.request["AlgorithmSpecification"]["MetricDefinitions"]
    assert completed.final["HyperParameters"] == completed.request["HyperParameters"]
    assert [(m["MetricName"], m["Value"]) for m in completed.final["FinalMetricDataList"]] == [("val_loss", 0.25)]
    # as the service answers: KmsKeyId "" when none was sent (the SDK v2's Estimator.attach reads it)
    assert completed.final["OutputDataConfig"] == {**completed.request["OutputDataConfig"], "KmsKeyId": ""}


def test_logs_hold_the_script_output(aws: SimpleNamespace, completed: SimpleNamespace) -> None:
    streams = log_lines(aws, completed.name)
    assert len(streams) == 1
    [(stream, lines)] = streams.items()
    assert re.fullmatch(rf"{completed.name}/algo-1-\d+", stream)
    assert "host=algo-1 rank=0 world=1 mode=basic" in lines
    assert "cloudtrain-metric name=val_loss value=0.25 step=1" in lines


def test_model_is_uploaded_where_sagemaker_puts_it(emulator: SageMakerEmulator, completed: SimpleNamespace) -> None:
    assert completed.final["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{emulator.bucket}/output/{completed.name}/output/model.tar.gz"
    assert completed.report["rank"] == 0


def test_script_sees_the_sagemaker_environment(emulator: SageMakerEmulator, completed: SimpleNamespace) -> None:
    report, env = completed.report, completed.report["env"]
    host_root = emulator.job_root(completed.name) / "algo-1"
    assert report["hps"] == {"mode": "basic", "epochs": 3, "lr": 0.01, "tag": "demo", "gate": report["hps"]["gate"]}
    assert json.loads(env["SM_HPS"])["epochs"] == 3 and "sagemaker_program" not in env["SM_HPS"]
    assert report["argv"][:4] == ["--epochs", "3", "--gate", report["hps"]["gate"]] and "--tag" in report["argv"]
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert env["SM_CHANNEL_TRAIN"] == str(host_root / "opt/ml/input/data/train")
    assert report["inputs"] == {"train": ["part-0.csv", "part-1.csv"]}
    assert env["SM_MODEL_DIR"] == str(host_root / "opt/ml/model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(host_root / "opt/ml/output/data")
    assert env["CLOUDTRAIN_CHECKPOINT_DIR"] == str(host_root / "opt/ml/checkpoints")
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1" and env["SM_NUM_GPUS"] == "0"
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == completed.name
    assert env["TRAINING_JOB_NAME"] == completed.name
    assert env["CT_RUN"] == "1" and env["CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS"] == "60"
    assert report["cwd"] == str(host_root / "opt/ml/code")
    # the code first, then the job's own PYTHONPATH (its Environment), not replaced by the emulator's
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(host_root / "opt/ml/code"), "/srv/job-libs"]


def test_failing_script_fails_the_job_with_the_error(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = job_request(emulator, "fail")
    aws.sagemaker.create_training_job(**request)
    final = wait_ended(aws, request["TrainingJobName"])
    assert final["TrainingJobStatus"] == "Failed" and final["SecondaryStatus"] == "Failed"
    assert final["FailureReason"].startswith("AlgorithmError: ValueError: boom: learning rate must be positive")
    assert "exit code: 1" in final["FailureReason"]
    assert "ModelArtifacts" not in final
    assert any("Traceback" in line for line in sum(log_lines(aws, request["TrainingJobName"]).values(), []))


def test_stop_training_job_sends_sigterm_and_ends_stopped(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = job_request(emulator, "wait_for_stop")
    name = request["TrainingJobName"]
    aws.sagemaker.create_training_job(**request)
    wait_until(lambda: "ready for a stop" in sum(log_lines(aws, name).values(), []), TIMEOUT, what="the script to start")
    aws.sagemaker.stop_training_job(TrainingJobName=name)
    assert describe(aws, name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    final = wait_ended(aws, name)
    assert final["TrainingJobStatus"] == "Stopped"
    assert [t["Status"] for t in final["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert model_files(aws, final) == {"stopped.txt": b"saved on SIGTERM"}  # the grace period was honoured
    with pytest.raises(ClientError) as again:
        aws.sagemaker.stop_training_job(TrainingJobName=name)
    assert again.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as missing:
        aws.sagemaker.stop_training_job(TrainingJobName="ct-no-such-job")
    assert "Could not find" in missing.value.response["Error"]["Message"]


def test_two_node_job_runs_one_process_per_host(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = job_request(emulator, nodes=2)
    aws.sagemaker.create_training_job(**request)
    final = wait_ended(aws, request["TrainingJobName"])
    assert final["TrainingJobStatus"] == "Completed"
    streams = log_lines(aws, request["TrainingJobName"])
    by_host = {re.search(r"/(algo-\d+)-\d+$", s).group(1): lines for s, lines in streams.items()}
    assert sorted(by_host) == ["algo-1", "algo-2"]
    assert "host=algo-1 rank=0 world=2 mode=basic" in by_host["algo-1"]
    assert "host=algo-2 rank=1 world=2 mode=basic" in by_host["algo-2"]
    report = json.loads(model_files(aws, final)["model.json"])  # written by the main process only
    assert json.loads(report["env"]["SM_HOSTS"]) == ["algo-1", "algo-2"] and report["env"]["SM_CURRENT_HOST"] == "algo-1"


def test_torch_distributed_runs_torchrun_on_each_host(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    pytest.importorskip("torch")
    request = job_request(emulator, "torch", nodes=2)
    request["HyperParameters"]["sagemaker_torch_distributed_enabled"] = "true"
    request["Environment"]["CLOUDTRAIN_PROCESSES_PER_NODE"] = "1"
    aws.sagemaker.create_training_job(**request)
    final = wait_ended(aws, request["TrainingJobName"])
    assert final["TrainingJobStatus"] == "Completed", final.get("FailureReason")
    by_host = {re.search(r"/(algo-\d+)-\d+$", s).group(1): lines for s, lines in log_lines(aws, request["TrainingJobName"]).items()}
    assert "torch rank=0 world=2 sum=3" in by_host["algo-1"] and "torch rank=1 world=2 sum=3" in by_host["algo-2"]
    command = next(line for line in by_host["algo-2"] if line.startswith("Invoking script"))
    assert "torch.distributed.run --nnodes 2 --nproc_per_node 1 --node_rank 1 --master_addr 127.0.0.1" in command


def test_throttling_is_retried_by_botocore(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    emulator.throttle(2)
    created = emulator.create_count
    request = job_request(emulator)
    response = aws.sagemaker.create_training_job(**request)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert emulator.faults.count("throttle") == 2
    assert emulator.create_count == created + 1
    assert wait_ended(aws, request["TrainingJobName"])["TrainingJobStatus"] == "Completed"


def test_server_errors_are_retried_by_botocore(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    emulator.fail_with_server_error(1)
    created = emulator.create_count
    request = job_request(emulator)
    response = aws.sagemaker.create_training_job(**request)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert emulator.faults.count("5xx") == 1 and emulator.create_count == created + 1


def test_throttling_error_reaches_a_client_without_retries(emulator: SageMakerEmulator) -> None:
    emulator.throttle(1, operation="SageMaker.DescribeTrainingJob")
    client = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1",
                          config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    with pytest.raises(ClientError) as error:
        client.describe_training_job(TrainingJobName="ct-anything")
    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_connection_dropped_after_create_gives_already_exists_on_retry(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    emulator.drop_connection_after(1)
    created = emulator.create_count
    request = job_request(emulator)
    with pytest.raises(ClientError) as error:
        aws.sagemaker.create_training_job(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "already exists" in error.value.response["Error"]["Message"]
    assert emulator.faults.count("drop_after") == 1
    assert emulator.create_count == created + 1
    assert emulator.training_jobs()[-1] == request["TrainingJobName"]
    assert wait_ended(aws, request["TrainingJobName"])["TrainingJobStatus"] == "Completed"


def test_spot_interruption_restarts_from_the_checkpoint(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    emulator.interrupt_spot_jobs(1)
    request = job_request(emulator, "spot")
    name = request["TrainingJobName"]
    checkpoint_uri = f"s3://{emulator.bucket}/checkpoints/{name}"
    request.update(EnableManagedSpotTraining=True, CheckpointConfig={"S3Uri": checkpoint_uri},
                   StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200})
    aws.sagemaker.create_training_job(**request)
    final = wait_ended(aws, name)
    assert final["TrainingJobStatus"] == "Completed", final.get("FailureReason")
    statuses = [t["Status"] for t in final["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Interrupted", "Restarting", "Training", "Uploading", "Completed"]
    assert json.loads(model_files(aws, final)["model.json"]) == {"resumed_from": 1, "epochs": 3}
    lines = sum(log_lines(aws, name).values(), [])
    assert "starting at epoch 0 resumed=False" in lines and "starting at epoch 1 resumed=True" in lines
    assert any("spot capacity reclaimed" in line for line in lines)
    state = aws.s3.get_object(Bucket=emulator.bucket, Key=f"checkpoints/{name}/state.json")["Body"].read()
    assert json.loads(state) == {"epoch": 3}
    assert emulator.faults.count("preempt") == 1


def test_spot_job_without_max_wait_is_refused(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = job_request(emulator)
    request["EnableManagedSpotTraining"] = True
    created = emulator.create_count
    with pytest.raises(ClientError) as error:
        aws.sagemaker.create_training_job(**request)
    assert "MaxWaitTimeInSeconds" in error.value.response["Error"]["Message"]
    assert emulator.create_count == created


def test_unknown_instance_type_is_refused(emulator: SageMakerEmulator, aws: SimpleNamespace) -> None:
    request = job_request(emulator)
    request["ResourceConfig"]["InstanceType"] = "ml.nope.99xlarge"
    with pytest.raises(ClientError) as error:
        aws.sagemaker.create_training_job(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_environment_points_boto3_at_the_emulator(emulator: SageMakerEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    env = emulator.environment()
    assert env["AWS_ENDPOINT_URL"] == emulator.endpoint_url and env["CLOUDTRAIN_SAGEMAKER_REGION"] == "us-east-1"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.session.Session().client("s3")
    assert env["CLOUDTRAIN_SAGEMAKER_BUCKET"] in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    iam = boto3.session.Session().client("iam")
    assert iam.get_role(RoleName="cloudtrain-emulator")["Role"]["Arn"] == env["CLOUDTRAIN_SAGEMAKER_ROLE_ARN"]


def test_fault_specs_parse() -> None:
    faults = Faults.parse(["throttle=2", "5xx:SageMaker.DescribeTrainingJob", "drop-after=1", "preempt=3"],
                          default_operation="SageMaker.CreateTrainingJob")
    assert [(r.kind, r.operation, r.remaining) for r in faults.rules] == [
        ("throttle", "SageMaker.CreateTrainingJob", 2), ("server_error", "SageMaker.DescribeTrainingJob", 1),
        ("drop_after", "SageMaker.CreateTrainingJob", 1)]
    assert faults.preemptions == 3
    assert faults.take("SageMaker.ListTrainingJobs") is None
    assert faults.take("SageMaker.CreateTrainingJob").kind == "throttle"
    with pytest.raises(ValueError):
        Faults.parse(["meteor=1"])
    given_as_text = SageMakerEmulator(faults=["throttle=2", "preempt"]).faults  # as `cloudtrain emulator start` passes them
    assert [(r.kind, r.operation, r.remaining) for r in given_as_text.rules] == [("throttle", "SageMaker.CreateTrainingJob", 2)]
    assert given_as_text.preemptions == 1


def test_serve_forever_runs_in_the_foreground_until_ctrl_c() -> None:
    code = ("from cloudtrain.emulators.common import serve_forever; from cloudtrain.emulators.sagemaker import SageMakerEmulator; "
            "serve_forever(SageMakerEmulator())")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exports: dict[str, str] = {}
        assert process.stdout is not None
        for line in process.stdout:  # ends at EOF if the process dies
            if line.startswith("export "):
                key, _, value = line[len("export "):].strip().partition("=")
                exports[key] = shlex.split(value)[0]
            if "CLOUDTRAIN_SAGEMAKER_BUCKET" in exports:
                break
        s3 = boto3.client("s3", endpoint_url=exports["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        assert exports["CLOUDTRAIN_SAGEMAKER_BUCKET"] in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
