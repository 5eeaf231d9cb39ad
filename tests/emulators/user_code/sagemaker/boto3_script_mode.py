"""Script mode with plain boto3: stage sourcedir.tar.gz and the data, create the job, wait, fetch the model.

The classic framework-container contract: ``sagemaker_program`` and ``sagemaker_submit_directory``
hyperparameters, the others JSON-encoded. Nothing here knows about an emulator: the AWS environment
decides where the calls go. Prints the job's log lines, then the model's JSON on the last line.
"""

import io
import json
import tarfile
import time
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

session = boto3.session.Session()
region = session.region_name
account = session.client("sts").get_caller_identity()["Account"]
s3, sagemaker, iam, logs, secrets = (session.client(name) for name in ("s3", "sagemaker", "iam", "logs", "secretsmanager"))
SECRET_ID = "linear-script-mode/api-token"


def execution_role() -> str:
    """The account's role that SageMaker may assume."""
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if "sagemaker.amazonaws.com" in json.dumps(role["AssumeRolePolicyDocument"]):
                return role["Arn"]
    raise SystemExit("no IAM role trusts sagemaker.amazonaws.com in this account")


bucket = f"sagemaker-{region}-{account}"  # the SDK's default bucket name
if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=bucket)

try:  # the job reads it with its role's credentials
    secrets.create_secret(Name=SECRET_ID, SecretString="token-for-the-training-job")
except secrets.exceptions.ResourceExistsException:
    pass

job_name = f"linear-script-mode-{time.strftime('%Y%m%d%H%M%S')}"
prefix = f"script-mode/{job_name}"
bundle = io.BytesIO()
with tarfile.open(fileobj=bundle, mode="w:gz") as archive:
    archive.add(HERE / "src" / "train.py", arcname="train.py")
s3.put_object(Bucket=bucket, Key=f"{prefix}/source/sourcedir.tar.gz", Body=bundle.getvalue())
s3.upload_file(str(HERE / "data" / "train.csv"), bucket, f"{prefix}/data/train/train.csv")

hyperparameters = {"epochs": 200, "learning-rate": 0.1, "secret-id": SECRET_ID}
sagemaker.create_training_job(
    TrainingJobName=job_name,
    AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
    RoleArn=execution_role(),
    HyperParameters={**{k: json.dumps(v) for k, v in hyperparameters.items()},
                     "sagemaker_program": json.dumps("train.py"),
                     "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/{prefix}/source/sourcedir.tar.gz"),
                     "sagemaker_region": json.dumps(region)},
    InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}/data/train", "S3DataDistributionType": "FullyReplicated"}}}],
    OutputDataConfig={"S3OutputPath": f"s3://{bucket}/{prefix}/output"},
    ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
    StoppingCondition={"MaxRuntimeInSeconds": 900},
)
sagemaker.get_waiter("training_job_completed_or_stopped").wait(
    TrainingJobName=job_name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
job = sagemaker.describe_training_job(TrainingJobName=job_name)

streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job_name}/")
for stream in streams["logStreams"]:
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"],
                                 startFromHead=True)["events"]
    for event in events:
        print(event["message"])
if job["TrainingJobStatus"] != "Completed":
    raise SystemExit(f"{job_name} ended {job['TrainingJobStatus']}: {job.get('FailureReason')}")

model_bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=model_bucket, Key=key)["Body"].read())) as model:
    print(json.dumps(json.load(model.extractfile("model.json"))))
