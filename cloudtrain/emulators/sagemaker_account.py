"""What the emulated AWS account holds when the SageMaker emulator starts, and the SDK defaults file.

The account has one SageMaker execution role, ``cloudtrain-emulator``: trusted by
``sagemaker.amazonaws.com``, with an inline policy granting what a training job and the SageMaker
Python SDK's role check need (the role is a real IAM entity in moto, so ``iam:GetRole`` and
``iam:SimulatePrincipalPolicy`` see it as it is), and one bucket, ``cloudtrain-emulator-<account>``.

The SageMaker Python SDK reads an administrator defaults file named by
``SAGEMAKER_ADMIN_CONFIG_OVERRIDE`` (a user's own ``~/.config/sagemaker/config.yaml`` or
``SAGEMAKER_USER_CONFIG_OVERRIDE`` still wins over it). The emulator writes one into its root with
the role as ``SageMaker.TrainingJob.RoleArn``, as an administrator sets a default execution role
(without one the SDK infers a role from the caller, and the emulator's caller is an IAM user, so
the SDK would refuse it as it does on AWS), and telemetry off (the SDK would report an emulated job
to AWS). The default bucket is left to the SDK: it names ``sagemaker-<region>-<account>`` from
STS at its fixed address (reached through the emulator's proxy) and creates it.
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
               "kms:GenerateDataKey", "lambda:InvokeFunction", "secretsmanager:GetSecretValue"]}]}
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


def write_sdk_defaults(directory: Path, role_arn: str) -> Path:
    """The SageMaker Python SDK defaults file (JSON is YAML; the SDK validates it against its schema)."""
    defaults = {"SchemaVersion": "1.0", "SageMaker": {
        "PythonSDK": {"Modules": {"TelemetryOptOut": True}}, "TrainingJob": {"RoleArn": role_arn}}}
    path = directory / SDK_DEFAULTS_FILE
    path.write_text(json.dumps(defaults, indent=2) + "\n")
    return path
