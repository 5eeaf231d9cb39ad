"""Train with the SageMaker Python SDK v2 ``PyTorch`` estimator, as most existing pipelines do, then
read the model back with boto3.

Script mode: ``entry_point`` inside ``source_dir``, the framework image URI as the SDK resolves it,
the execution role from ``sagemaker.get_execution_role()``, a channel uploaded from a local folder
with ``session.upload_data``, ``fit(wait=True, logs=True)``,
then ``PyTorch.attach`` to the job by name (as a later step of a pipeline does). Nothing here knows
about an emulator: the AWS environment decides where the calls go. Prints the job's log lines (the
SDK streams them) and the attached estimator's view to stderr, the model's JSON on the last line.
"""

import io
import json
import sys
import tarfile
from pathlib import Path

import boto3
import sagemaker
from sagemaker.pytorch import PyTorch

HERE = Path(__file__).resolve().parent

session = sagemaker.Session()
role = sagemaker.get_execution_role()  # as the samples, written for a SageMaker notebook, ask for it
train = session.upload_data(path=str(HERE / "data"), key_prefix="linear-estimator-v2/data/train")
print(f"uploaded the training data to {train}", file=sys.stderr)

estimator = PyTorch(
    entry_point="train.py",
    source_dir=str(HERE / "src"),
    framework_version="2.1",
    py_version="py310",
    instance_type="ml.m5.xlarge",
    instance_count=1,
    hyperparameters={"epochs": 200, "learning-rate": 0.1},
    role=role,
    base_job_name="linear-estimator-v2",
    tags=[{"Key": "team", "Value": "forecasting"}],
    sagemaker_session=session,
)
estimator.fit({"train": train}, wait=True, logs=True)

job_name = estimator.latest_training_job.name
attached = PyTorch.attach(job_name, sagemaker_session=session)
print("attached " + json.dumps({"job": job_name, "model_data": attached.model_data, "entry_point": attached.entry_point,
                                "framework_version": attached.framework_version, "tags": attached.tags}), file=sys.stderr)
bucket, _, key = estimator.model_data.removeprefix("s3://").partition("/")
archive = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
with tarfile.open(fileobj=io.BytesIO(archive)) as model:
    print(json.dumps(json.load(model.extractfile("model.json"))))
