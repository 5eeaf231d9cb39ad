"""Train with the SageMaker Python SDK v3 ModelTrainer, as its documentation shows, then read the model back.

Nothing here knows about an emulator: the AWS environment decides where the calls go.
Prints the model's JSON on the last line.
"""

import io
import json
import logging
import sys
import tarfile
from pathlib import Path

import boto3
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode

HERE = Path(__file__).resolve().parent
logging.basicConfig(level=logging.INFO)  # the SDK leaves logging to the application; train(logs=True) logs at INFO

trainer = ModelTrainer(
    training_image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
    source_code=SourceCode(source_dir=str(HERE / "src"), entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
    hyperparameters={"epochs": 200, "learning-rate": 0.1},
    base_job_name="linear-modeltrainer",
)
trainer.train(input_data_config=[InputData(channel_name="train", data_source=str(HERE / "data"))], wait=True, logs=True)

job = trainer._latest_training_job  # as the ModelTrainer documentation reads it
job.refresh()
print(f"job {job.training_job_name}: {job.training_job_status}", file=sys.stderr)
bucket, _, key = job.model_artifacts.s3_model_artifacts.removeprefix("s3://").partition("/")
archive = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
with tarfile.open(fileobj=io.BytesIO(archive)) as model:
    print(json.dumps(json.load(model.extractfile("model.json"))))
