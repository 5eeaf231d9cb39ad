"""Users' unchanged SageMaker code against the emulator, with nothing but the variables it exports.

Each script under ``user_code/sagemaker/`` is written as for the real cloud (no endpoint, no
cloudtrain import). It runs in a subprocess whose environment is a clean one (``PATH``, a fresh
``HOME``) plus :meth:`SageMakerEmulator.environment` (what ``cloudtrain emulator start --cloud
sagemaker`` prints), plus guards so nothing leaves the machine: no instance metadata lookups, the
emulator's HTTPS proxy refuses every host but AWS's (``proxy_passthrough=False``), and plain HTTP
goes to a loopback port that refuses connections. The tests read what the training code produced
(its log lines, the model archive's content), never what the emulator was told.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from cloudtrain.emulators import sagemaker_mounts  # noqa: E402
from cloudtrain.emulators.sagemaker import SageMakerEmulator  # noqa: E402

USER_CODE = Path(__file__).resolve().parent / "sagemaker"
SCRIPT_TIMEOUT = 300
#: The SageMaker Python SDK v2 cannot share the project's venv with v3: ``make test`` installs it here.
SDK_V2_PYTHON = Path(__file__).resolve().parents[3] / ".venv-sm2" / "bin" / "python"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerEmulator]:
    with SageMakerEmulator(root=tmp_path_factory.mktemp("sm-user-code"), stop_grace_seconds=5, proxy_passthrough=False) as running:
        yield running


@pytest.fixture(scope="module")
def refusing_proxy() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where nothing listens (a socket holds the port without listening),
    the proxy for plain HTTP."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"


def run_user_script(emulator: SageMakerEmulator, proxy: str, home: Path, script: str,
                    python: str = sys.executable) -> SimpleNamespace:
    exported = emulator.environment()
    assert exported["HTTPS_PROXY"].startswith("http://127.0.0.1:")  # the emulator's proxy, refusing other hosts
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **exported,
           "AWS_EC2_METADATA_DISABLED": "true", "HTTP_PROXY": proxy, "http_proxy": proxy}
    done = subprocess.run([python, str(USER_CODE / script)], env=env, cwd=home, capture_output=True, text=True,
                          timeout=SCRIPT_TIMEOUT)
    lines = done.stdout.strip().splitlines()
    return SimpleNamespace(code=done.returncode, stdout=done.stdout, stderr=done.stderr,
                           model=json.loads(lines[-1]) if done.returncode == 0 and lines else None)


def describe(emulator: SageMakerEmulator, prefix: str) -> dict:
    names = [n for n in emulator.training_jobs() if n.startswith(prefix)]
    assert len(names) == 1, names
    sagemaker = boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, region_name=emulator.region,
                             aws_access_key_id="testing", aws_secret_access_key="testing")
    return sagemaker.describe_training_job(TrainingJobName=names[0])


def assert_trained(model: dict) -> None:
    """What train.py computes from data/train.csv (y = 2x + 1, 7 rows) with 200 epochs."""
    assert model["epochs"] == 200 and model["rows"] == 7
    assert model["weights"] == pytest.approx([2.0, 1.0], abs=1e-3)
    assert model["loss"] < 1e-6


def test_modeltrainer_with_a_local_input_folder_runs_the_entry_script(emulator: SageMakerEmulator, refusing_proxy: str,
                                                                     tmp_path: Path) -> None:
    pytest.importorskip("sagemaker.train")
    result = run_user_script(emulator, refusing_proxy, tmp_path, "modeltrainer_job.py")
    unavailable = sagemaker_mounts.unavailable_reason()
    if unavailable:  # the job is refused with the reason, not run with paths it cannot see
        assert result.code != 0
        assert "sees its files at /opt/ml" in result.stderr and unavailable in result.stderr
        return
    assert result.code == 0, result.stderr[-4000:]
    assert_trained(result.model)
    # hyperparameters.json read at /opt/ml by the script: what the SDK sent, as SageMaker writes it
    assert result.model["hyperparameters_file"] == {"epochs": "200", "learning-rate": "0.1"}
    # train(logs=True) streamed the job's CloudWatch lines: the SDK driver's and the script's own
    assert "Running Basic Script driver" in result.stderr
    assert "training finished: epochs=200 rows=7" in result.stderr

    job = describe(emulator, "linear-modeltrainer-")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]
    assert "sm_train.sh" in job["AlgorithmSpecification"]["ContainerArguments"][-1]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "code", "sm_drivers"}
    # the SDK's own default bucket, named from STS at its fixed address (through the proxy) and created
    default_bucket = f"sagemaker-{emulator.region}-{emulator.account_id}"
    assert all(uri.startswith(f"s3://{default_bucket}/linear-modeltrainer/") for uri in channels.values())


def test_modeltrainer_torchrun_on_two_instances_reaches_across_hosts(emulator: SageMakerEmulator, refusing_proxy: str,
                                                                    tmp_path: Path) -> None:
    """The SDK's Torchrun driver starts torchrun with --master_addr=algo-1 on each host: the hosts resolve."""
    pytest.importorskip("sagemaker.train")
    pytest.importorskip("torch")
    if sagemaker_mounts.unavailable_reason():
        pytest.skip(sagemaker_mounts.unavailable_reason())
    result = run_user_script(emulator, refusing_proxy, tmp_path, "modeltrainer_torchrun.py")
    assert result.code == 0, result.stderr[-4000:]
    assert result.model == {"sum": 3.0, "world": 2}  # ranks 0 and 1 added 1 + 2
    for rank, host in ((0, "algo-1"), (1, "algo-2")):
        assert f"all-reduce rank={rank} world=2 sum=3 host={host}" in result.stderr
    assert "--master_addr=algo-1" in result.stderr


def test_boto3_script_mode_runs_the_program_and_returns_the_model(emulator: SageMakerEmulator, refusing_proxy: str,
                                                                tmp_path: Path) -> None:
    if sagemaker_mounts.unavailable_reason():
        pytest.skip(f"train.py reads /opt/ml/input/config directly: {sagemaker_mounts.unavailable_reason()}")
    result = run_user_script(emulator, refusing_proxy, tmp_path, "boto3_script_mode.py")
    assert result.code == 0, result.stderr[-4000:]
    assert_trained(result.model)
    assert "training finished: epochs=200 rows=7" in result.stdout  # printed from CloudWatch by the script
    sent = result.model["hyperparameters_file"]
    assert json.loads(sent["sagemaker_program"]) == "train.py" and sent["epochs"] == "200"
    # the job read the secret the script stored, with its role's credentials (no keys in its environment)
    assert result.model["secret_sha256"] == hashlib.sha256(b"token-for-the-training-job").hexdigest()
    assert "token-for-the-training-job" not in result.stdout + result.stderr

    job = describe(emulator, "linear-script-mode-")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith(f"/{job['TrainingJobName']}/output/model.tar.gz")


def sdk_v2_python() -> str:
    """The interpreter of the SDK v2 venv, or a skip saying how to create it."""
    how = "the SageMaker Python SDK v2 lives in .venv-sm2: `make sagemaker-v2` (or `make test`) creates it (a package registry is needed)"
    if not SDK_V2_PYTHON.is_file():
        pytest.skip(f"{SDK_V2_PYTHON} is missing: {how}")
    found = subprocess.run([str(SDK_V2_PYTHON), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
                           capture_output=True, text=True, timeout=60)
    if found.returncode != 0 or not found.stdout.startswith("2."):
        pytest.skip(f"{SDK_V2_PYTHON} has no sagemaker 2.x ({(found.stdout or found.stderr).strip()[-200:]}): {how}")
    return str(SDK_V2_PYTHON)


def test_sdk_v2_pytorch_estimator_fit_streams_the_logs_and_attach_reads_the_job(emulator: SageMakerEmulator,
                                                                               refusing_proxy: str, tmp_path: Path) -> None:
    """The v2 flow: upload_data to the default bucket, PyTorch(entry_point, source_dir).fit(logs=True),
    model_data, PyTorch.attach (DescribeTrainingJob as the service answers it, ListTags)."""
    python = sdk_v2_python()
    if sagemaker_mounts.unavailable_reason():
        pytest.skip(f"train.py reads /opt/ml/input/config directly: {sagemaker_mounts.unavailable_reason()}")
    result = run_user_script(emulator, refusing_proxy, tmp_path, "estimator_v2_job.py", python=python)
    assert result.code == 0, result.stderr[-4000:]
    assert_trained(result.model)
    default_bucket = f"sagemaker-{emulator.region}-{emulator.account_id}"
    sent = result.model["hyperparameters_file"]  # the framework estimator's contract, JSON-encoded
    assert json.loads(sent["sagemaker_program"]) == "train.py" and sent["epochs"] == "200"
    assert json.loads(sent["sagemaker_submit_directory"]).startswith(f"s3://{default_bucket}/linear-estimator-v2-")
    # fit(logs=True) printed the status changes and the job's CloudWatch lines
    assert "Completed - Training job completed" in result.stdout
    assert "training finished: epochs=200 rows=7" in result.stdout

    job = describe(emulator, "linear-estimator-v2-")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["RoleArn"] == emulator.role_arn  # get_execution_role(): the exports act as a session of the role
    # the image URI as the SDK resolves it for PyTorch 2.1 on a CPU instance
    assert job["AlgorithmSpecification"]["TrainingImage"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels == {"train": f"s3://{default_bucket}/linear-estimator-v2/data/train"}  # session.upload_data
    attached = json.loads(next(line for line in result.stderr.splitlines() if line.startswith("attached "))[len("attached "):])
    assert attached["job"] == job["TrainingJobName"]
    assert attached["model_data"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert attached["entry_point"] == "train.py" and attached["framework_version"] == "2.1"
    assert {"Key": "team", "Value": "forecasting"} in attached["tags"]


def test_the_role_check_the_sdk_makes_sees_the_roles_policies(emulator: SageMakerEmulator) -> None:
    """iam:SimulatePrincipalPolicy evaluates what each role really has, so the SDK refuses a bare role."""
    iam = boto3.client("iam", endpoint_url=emulator.endpoint_url, region_name=emulator.region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "sagemaker.amazonaws.com"}}]})
    bare = iam.create_role(RoleName="bare-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    denied = iam.create_role(RoleName="denied-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="denied-role", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}))
    actions = ["s3:GetObject", "s3:PutObject", "sagemaker:CreateTrainingJob"]

    def decisions(arn: str) -> dict[str, str]:
        results = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions)["EvaluationResults"]
        return {r["EvalActionName"]: r["EvalDecision"] for r in results}

    assert decisions(emulator.role_arn) == dict.fromkeys(actions, "allowed")
    assert decisions(bare) == dict.fromkeys(actions, "implicitDeny")
    assert decisions(denied) == {"s3:GetObject": "allowed", "s3:PutObject": "explicitDeny",
                                 "sagemaker:CreateTrainingJob": "implicitDeny"}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.simulate_principal_policy(PolicySourceArn=bare.replace("bare-role", "missing-role"), ActionNames=actions)
