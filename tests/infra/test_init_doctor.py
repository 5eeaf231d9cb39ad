"""`cloudtrain init` reads each template's outputs in the forms the deployment tools print and writes
the cloud's config section; `cloudtrain doctor` reports one line per check with the fix, offline, and
fails fast (seconds) when an endpoint does not answer."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from cloudtrain.specfile import user_config_path
from infra_files import cli

ARM_SHOW = {"id": "/subscriptions/0000/resourceGroups/ml/providers/Microsoft.Resources/deployments/cloudtrain",
            "properties": {"provisioningState": "Succeeded", "outputs": {
                "subscriptionId": {"type": "String", "value": "00000000-0000-0000-0000-000000000000"},
                "resourceGroup": {"type": "String", "value": "ml"},
                "workspace": {"type": "String", "value": "cloudtrain"},
                "compute": {"type": "String", "value": "gpu-cluster"},
                "region": {"type": "String", "value": "eastus"},
                "storageAccount": {"type": "String", "value": "ctstabc"}}}}
TERRAFORM_OUTPUT = {
    "project": {"sensitive": False, "type": "string", "value": "my-project"},
    "location": {"sensitive": False, "type": "string", "value": "us-central1"},
    "staging_bucket": {"sensitive": False, "type": "string", "value": "gs://my-project-cloudtrain-staging/cloudtrain"},
    "service_account": {"sensitive": False, "type": "string", "value": "cloudtrain-training@my-project.iam.gserviceaccount.com"},
    "image_repository": {"sensitive": False, "type": "string", "value": "us-central1-docker.pkg.dev/my-project/cloudtrain-training"},
}


def config() -> dict:
    return yaml.safe_load(user_config_path().read_text())


def write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_init_from_an_arm_deployment_keeps_other_sections_and_keys(tmp_path: Path) -> None:
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text("sagemaker: {region: eu-west-1}\nazureml: {experiment: mine, workspace: old}\n")
    result = cli("init", "--cloud", "azureml", "--from-stack-outputs", write(tmp_path, ARM_SHOW))
    assert result.returncode == 0, result.stderr
    assert config() == {"sagemaker": {"region": "eu-west-1"},
                        "azureml": {"experiment": "mine", "workspace": "cloudtrain", "subscription_id": "00000000-0000-0000-0000-000000000000",
                                    "resource_group": "ml", "compute": "gpu-cluster", "region": "eastus"}}
    assert "next: cloudtrain doctor --cloud azureml" in result.stdout


def test_init_from_terraform_output_json_on_stdin() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cloudtrain", "init", "--cloud", "vertex", "--from-stack-outputs", "-"],
                            input=json.dumps(TERRAFORM_OUTPUT), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert config() == {"vertex": {"project": "my-project", "location": "us-central1",
                                   "staging_bucket": "gs://my-project-cloudtrain-staging/cloudtrain",
                                   "service_account": "cloudtrain-training@my-project.iam.gserviceaccount.com"}}


def test_init_reads_the_bare_forms() -> None:
    from cloudtrain.cli.init import read_outputs

    assert read_outputs(json.dumps(ARM_SHOW["properties"]["outputs"]), "x")["workspace"] == "cloudtrain"  # --query properties.outputs
    outputs = [{"OutputKey": "RoleArn", "OutputValue": "arn:aws:iam::1:role/r"}, {"OutputKey": "BucketName", "OutputValue": "b"}]
    assert read_outputs(json.dumps(outputs), "x") == {"RoleArn": "arn:aws:iam::1:role/r", "BucketName": "b"}  # --query Stacks[0].Outputs
    assert read_outputs('{"project": "p"}', "x") == {"project": "p"}


def test_init_refuses_outputs_of_another_template_and_writes_nothing(tmp_path: Path) -> None:
    result = cli("init", "--cloud", "sagemaker", "--from-stack-outputs", write(tmp_path, TERRAFORM_OUTPUT))
    assert result.returncode == 2
    assert "no output RoleArn, BucketName for sagemaker" in result.stderr and "infra/aws" in result.stderr
    assert "Traceback" not in result.stderr and not user_config_path().exists()


def test_init_refuses_two_stacks_and_an_invalid_config(tmp_path: Path) -> None:
    stack = {"Outputs": [{"OutputKey": "RoleArn", "OutputValue": "arn:aws:iam::1:role/r"}, {"OutputKey": "BucketName", "OutputValue": "b"}]}
    result = cli("init", "--cloud", "sagemaker", "--from-stack-outputs", write(tmp_path, {"Stacks": [stack, stack]}))
    assert result.returncode == 2 and "--stack-name" in result.stderr
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text("nonsense: {a: 1}\n")
    result = cli("init", "--cloud", "sagemaker", "--from-stack-outputs", write(tmp_path, {"Stacks": [stack]}))
    assert result.returncode == 2 and "unknown config section" in result.stderr
    assert user_config_path().read_text() == "nonsense: {a: 1}\n"


def test_doctor_offline_names_what_is_missing_with_the_fix(tmp_path: Path) -> None:
    result = cli("doctor", "--offline")
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert any(line.startswith("warn user config:") and "cloudtrain init" in line for line in lines), result.stdout
    for cloud, template in (("sagemaker", "infra/aws"), ("azureml", "infra/azure"), ("vertex", "infra/gcp")):
        line = next(line for line in lines if line.startswith(f"FAIL {cloud} settings:"))
        assert "-- fix: deploy " + template in line and f"cloudtrain init --cloud {cloud}" in line
    cli("init", "--cloud", "vertex", "--from-stack-outputs", write(tmp_path, TERRAFORM_OUTPUT))
    result = cli("doctor", "--offline")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[:3] == [
        f"ok   user config: {user_config_path()} is valid (vertex)",
        "ok   vertex settings: project=my-project, location=us-central1, staging_bucket=gs://my-project-cloudtrain-staging/cloudtrain, "
        "service_account=cloudtrain-training@my-project.iam.gserviceaccount.com",
        "skip vertex online: --offline"]


def test_doctor_reports_an_invalid_config_file() -> None:
    user_config_path().parent.mkdir(parents=True)
    user_config_path().write_text("sagemaker: [1, 2]\n")
    result = cli("doctor", "--offline")
    assert result.returncode == 3
    assert result.stdout.startswith("FAIL user config:") and "must be a mapping" in result.stdout


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("cloud, settings, environment, expected", [
    ("sagemaker", ["role_arn=arn:aws:iam::123456789012:role/r", "bucket=b", "region=us-east-1"],
     {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
     "FAIL sagemaker endpoint: AWS did not answer in us-east-1"),
    ("vertex", ["project=p", "staging_bucket=gs://b"], {"CLOUDTRAIN_VERTEX_API_ENDPOINT": "127.0.0.1:{port}"},
     "FAIL vertex endpoint: 127.0.0.1:{port} unreachable"),
    ("azureml", ["subscription_id=s", "resource_group=g", "workspace=w"], {"AZUREML_DEV_URL_MFE": "https://127.0.0.1:{port}/"},
     "FAIL azureml endpoint: 127.0.0.1:{port} unreachable"),
])
def test_doctor_fails_fast_on_an_endpoint_that_does_not_answer(cloud: str, settings: list[str], environment: dict[str, str],
                                                               expected: str) -> None:
    port = closed_port()
    env = {**os.environ, **{k: v.format(port=port) for k, v in environment.items()},
           **{f"CLOUDTRAIN_{cloud.upper()}_{k.split('=')[0].upper()}": k.split("=", 1)[1] for k in settings}}
    started = time.monotonic()
    result = cli("doctor", "--cloud", cloud, env=env, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert expected.format(port=port) in result.stdout, result.stdout
    assert "-- fix: check the network" in result.stdout
    assert time.monotonic() - started < 30


def test_sagemaker_quota_check_reads_service_quotas() -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    from cloudtrain.cli.doctor import sagemaker_quota_check

    client = boto3.client("service-quotas", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    quota = {"ServiceCode": "sagemaker", "Unit": "None", "Adjustable": True, "GlobalQuota": False}
    with Stubber(client) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [
            {**quota, "QuotaName": "ml.g5.xlarge for training job usage", "Value": 2.0},
            {**quota, "QuotaName": "ml.p4d.24xlarge for training job usage", "Value": 0.0}], "NextToken": "t"})
        stub.add_response("list_service_quotas", {"Quotas": [
            {**quota, "QuotaName": "ml.m5.large for training job usage", "Value": 10.0},
            {**quota, "QuotaName": "ml.g4dn.xlarge for training job usage", "Value": 1.0}]})
        check = sagemaker_quota_check(client)
    assert check.line() == "ok   sagemaker quotas: GPU training quota: ml.g4dn.xlarge=1, ml.g5.xlarge=2"
    with Stubber(client) as stub:
        stub.add_response("list_service_quotas", {"Quotas": [{**quota, "QuotaName": "ml.g5.xlarge for training job usage", "Value": 0.0}]})
        check = sagemaker_quota_check(client)
    assert check.status == "warn" and "request an increase" in (check.fix or "")


def emulator_environment(emulator: object, keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The emulator's endpoint variables; its CLOUDTRAIN_<CLOUD>_* settings are left out (init writes them)."""
    return {**os.environ, **{k: v for k, v in emulator.environment().items()  # type: ignore[attr-defined]
                             if not k.startswith("CLOUDTRAIN_") or k in keep}}


def test_init_then_doctor_on_the_vertex_emulator(tmp_path: Path) -> None:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudtrain.emulators.vertex import VertexEmulator

    with VertexEmulator(root=tmp_path / "vertex") as emulator:
        outputs = {"project": {"type": "string", "value": emulator.project}, "location": {"type": "string", "value": emulator.location},
                   "staging_bucket": {"type": "string", "value": f"gs://{emulator.bucket}/cloudtrain"}}
        environment = emulator_environment(emulator, keep=("CLOUDTRAIN_VERTEX_API_ENDPOINT",))
        assert cli("init", "--cloud", "vertex", "--from-stack-outputs", write(tmp_path, outputs), env=environment).returncode == 0
        result = cli("doctor", "--cloud", "vertex", env=environment, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("vertex settings", "vertex credentials", "vertex endpoint", "vertex bucket"):
        assert any(line.startswith(f"ok   {check}:") for line in lines), result.stdout
    assert any(line.startswith("warn vertex service account:") for line in lines)
    assert any(line.startswith("skip vertex quotas:") for line in lines)


def test_init_then_doctor_on_the_azureml_emulator(tmp_path: Path) -> None:
    pytest.importorskip("azure.ai.ml")
    from cloudtrain.emulators.azureml import AzureMLEmulator

    with AzureMLEmulator(root=tmp_path / "azureml", server=True) as emulator:
        settings = emulator.settings
        outputs = {"properties": {"outputs": {
            "subscriptionId": {"type": "String", "value": settings["subscription_id"]},
            "resourceGroup": {"type": "String", "value": settings["resource_group"]},
            "workspace": {"type": "String", "value": settings["workspace"]},
            "region": {"type": "String", "value": settings["region"]}}}}
        environment = emulator_environment(emulator)
        assert cli("init", "--cloud", "azureml", "--from-stack-outputs", write(tmp_path, outputs), env=environment).returncode == 0
        result = cli("doctor", "--cloud", "azureml", env=environment, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("azureml settings", "azureml endpoint", "azureml credentials", "azureml workspace"):
        assert any(line.startswith(f"ok   {check}:") for line in lines), result.stdout
