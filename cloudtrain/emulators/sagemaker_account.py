"""What the emulated AWS account holds when the SageMaker emulator starts, and the SDK defaults file.

The account has one SageMaker execution role, ``cloudtrain-emulator``: trusted by
``sagemaker.amazonaws.com``, with an inline policy granting what a training job and the SageMaker
Python SDK's role check need (the role is a real IAM entity in moto, so ``iam:GetRole`` and
``iam:SimulatePrincipalPolicy`` see it as it is), and one bucket, ``cloudtrain-emulator-<account>``.

The caller that ``emulator start``'s exports make is a session of that role (``assumed-role/
cloudtrain-emulator/SageMaker``), as the caller in a SageMaker notebook instance or Studio is its
execution role: the public samples, written for those, call ``sagemaker.get_execution_role()``,
which answers the role of an assumed-role caller and refuses an IAM user's keys (as on a laptop).

The SageMaker Python SDK reads an administrator defaults file named by
``SAGEMAKER_ADMIN_CONFIG_OVERRIDE`` (a user's own ``~/.config/sagemaker/config.yaml`` or
``SAGEMAKER_USER_CONFIG_OVERRIDE`` still wins over it). The emulator writes one into its root with
the role as ``SageMaker.TrainingJob.RoleArn``, as an administrator sets a default execution role
(code that leaves ``role`` unset gets it whoever the caller is), and telemetry off (the SDK would
report an emulated job to AWS). The default bucket is left to the SDK: it names
``sagemaker-<region>-<account>`` from STS at its fixed address (reached through the emulator's
proxy) and creates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROLE_NAME = "cloudtrain-emulator"
ROLE_POLICY_NAME = "cloudtrain-emulator-training"
TRUST_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
#: What AmazonSageMakerFullAccess and a job's data access grant, in short.
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["sagemaker:*", "sagemaker-mlflow:*", "s3:*", "logs:*", "cloudwatch:PutMetricData", "ecr:*",
               "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
               "ec2:DeleteNetworkInterfacePermission", "ec2:Describe*", "kms:Decrypt", "kms:Encrypt",
               "kms:GenerateDataKey", "lambda:InvokeFunction", "secretsmanager:GetSecretValue",
               "iam:GetRole", "iam:PassRole"]}]}  # a notebook's role reads itself and passes itself to its jobs
SDK_DEFAULTS_FILE = "sagemaker-sdk-defaults.yaml"


def set_up(iam: Any, s3: Any, bucket: str) -> None:
    """Create the role (with its policy) and the bucket, keeping what already exists."""
    try:
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    iam.put_role_policy(RoleName=ROLE_NAME, PolicyName=ROLE_POLICY_NAME, PolicyDocument=json.dumps(ROLE_POLICY))
    try:
        s3.create_bucket(Bucket=bucket)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass


def role_session(sts: Any, role_arn: str) -> dict[str, str]:
    """Credentials of a session of the execution role, as a SageMaker notebook's caller has them
    (the variables boto3 reads)."""
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="SageMaker", DurationSeconds=43200)["Credentials"]
    return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"]}


def write_sdk_defaults(directory: Path, role_arn: str) -> Path:
    """The SageMaker Python SDK defaults file (JSON is YAML; the SDK validates it against its schema)."""
    defaults = {"SchemaVersion": "1.0", "SageMaker": {
        "PythonSDK": {"Modules": {"TelemetryOptOut": True}}, "TrainingJob": {"RoleArn": role_arn}}}
    path = directory / SDK_DEFAULTS_FILE
    path.write_text(json.dumps(defaults, indent=2) + "\n")
    return path
