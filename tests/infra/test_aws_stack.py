"""infra/aws: cfn-lint passes; the template is least-privilege and the bucket locked down; the stack
deploys into the SageMaker emulator (moto's CloudFormation behind it), `cloudtrain init` reads the
stack's outputs, `cloudtrain doctor` passes, and the example job runs with the role and bucket the
stack created.

moto's CloudFormation creates the key, buckets (with their encryption), ECR repository, role and
policies, but not a bucket policy, versioning, public access block or log group key: those are checked in the
template itself (and by cfn-lint and checkov)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from infra_files import CFN_TEMPLATE, REPO, cli

cfnlint = pytest.importorskip("cfnlint", reason="cfn-lint comes with the lint-infra extra (make test installs it)")


def template() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(CFN_TEMPLATE))


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_passes() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(CFN_TEMPLATE)  # every rule, warnings and informational ones included
    assert matches == [], "\n".join(str(m) for m in matches)


def test_staging_bucket_is_encrypted_versioned_private_and_tls_only() -> None:
    bucket = template()["Resources"]["StagingBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] == "aws:kms" and rule["KMSMasterKeyID"] == {"Fn::GetAtt": ["StagingKey", "Arn"]}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True)
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireOldBundles"]["ExpirationInDays"] == {"Ref": "BundleRetentionDays"}
    assert "NoncurrentVersionExpiration" in rules["RemoveOldVersions"]
    statements = template()["Resources"]["StagingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    tls = next(s for s in statements if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template()["Resources"]["StagingKey"]["Properties"]["EnableKeyRotation"] is True


def statements_of_role() -> list[dict[str, Any]]:
    role = template()["Resources"]["ExecutionRole"]["Properties"]
    found = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    return found + template()["Resources"]["SecretsPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def test_execution_role_is_least_privilege() -> None:
    role = template()["Resources"]["ExecutionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role  # no AmazonSageMakerFullAccess
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]
    for statement in statements_of_role():
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        if statement["Resource"] == "*":  # only actions that have no resource type
            assert actions in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"]), statement
    objects = next(s for s in statements_of_role() if s["Sid"] == "ReadWriteOwnPrefix")
    assert objects["Resource"] == {"Fn::Sub": "${StagingBucket.Arn}/${Prefix}/*"}
    metrics = next(s for s in statements_of_role() if s["Sid"] == "TrainingJobMetrics")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}


def test_outputs_are_what_cloudtrain_init_reads() -> None:
    from cloudtrain.cli.init import OUTPUTS

    assert set(OUTPUTS["sagemaker"]) <= set(template()["Outputs"])


@pytest.fixture
def emulator(tmp_path: Path):  # type: ignore[no-untyped-def]
    pytest.importorskip("moto")
    from cloudtrain.emulators.sagemaker import SageMakerEmulator

    with SageMakerEmulator(root=tmp_path / "sm") as running:
        yield running


def aws_environment(emulator: Any) -> dict[str, str]:
    """The emulator's endpoint and credentials, without its role and bucket: those come from the stack."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTRAIN_SAGEMAKER_")}
    environment.update({k: v for k, v in emulator.environment().items() if not k.startswith("CLOUDTRAIN_")})
    return environment


@pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")  # see the module docstring
def test_stack_deploys_then_init_doctor_and_the_example_job_use_its_role_and_bucket(emulator: Any, tmp_path: Path) -> None:
    import boto3

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=emulator.region)
    cloudformation = session.client("cloudformation", endpoint_url=emulator.endpoint_url)
    cloudformation.create_stack(StackName="cloudtrain", TemplateBody=CFN_TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                                Parameters=[{"ParameterKey": "SecretNames", "ParameterValue": "wandb,hf-token"},
                                            {"ParameterKey": "TrainingLogRetentionDays", "ParameterValue": "30"}])
    described = cloudformation.describe_stacks(StackName="cloudtrain")
    assert described["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0]["Outputs"]}

    iam = session.client("iam", endpoint_url=emulator.endpoint_url)
    role_name = outputs["RoleArn"].rsplit("/", 1)[-1]
    assert sorted(iam.list_role_policies(RoleName=role_name)["PolicyNames"]) == [
        "image-pull", "named-secrets", "staging-prefix", "training-logs-and-metrics"]
    secrets = json.dumps(iam.get_role_policy(RoleName=role_name, PolicyName="named-secrets")["PolicyDocument"])
    assert "secret:wandb-??????" in secrets and "secret:hf-token-??????" in secrets
    s3 = session.client("s3", endpoint_url=emulator.endpoint_url)
    encryption = s3.get_bucket_encryption(Bucket=outputs["BucketName"])["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

    logs = session.client("logs", endpoint_url=emulator.endpoint_url)
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/TrainingJobs")["logGroups"]
    assert group["retentionInDays"] == 30  # moto does not keep its KmsKeyId: checked in the template below
    assert template()["Resources"]["TrainingLogs"]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["StagingKey", "Arn"]}

    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(described, default=str))  # what `aws cloudformation describe-stacks` prints
    environment = aws_environment(emulator)
    initialised = cli("init", "--cloud", "sagemaker", "--from-stack-outputs", str(outputs_file), env=environment)
    assert initialised.returncode == 0, initialised.stderr
    from cloudtrain.specfile import user_config_path

    import yaml

    config = yaml.safe_load(user_config_path().read_text())
    assert config == {"sagemaker": {"role_arn": outputs["RoleArn"], "bucket": outputs["BucketName"], "prefix": "cloudtrain",
                                    "region": emulator.region}}

    doctor = cli("doctor", "--cloud", "sagemaker", env=environment, timeout=120)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    lines = doctor.stdout.splitlines()
    for check in ("sagemaker settings", "sagemaker credentials", "sagemaker endpoint", "sagemaker bucket", "sagemaker role"):
        assert any(line.startswith(f"ok   {check}:") for line in lines), doctor.stdout
    assert not any(line.startswith("FAIL") for line in lines), doctor.stdout

    submitted = cli("submit", str(REPO / "examples" / "digits-sklearn.yaml"), "--cloud", "sagemaker", "--wait",
                    "--set", "hyperparameters.n_estimators=20", env=environment, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    (job_name,) = emulator.training_jobs()
    request = emulator.job(job_name).request
    assert request["RoleArn"] == outputs["RoleArn"]
    assert request["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{outputs['BucketName']}/cloudtrain/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=outputs["BucketName"]).get("Contents", [])]
    assert any(k.endswith("sourcedir.tar.gz") for k in keys) and any(k.endswith("model.tar.gz") for k in keys), keys
