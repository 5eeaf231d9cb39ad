"""Two instances with the SageMaker Python SDK v3 ModelTrainer and its Torchrun driver, then the model read back.

Nothing here knows about an emulator. Prints the model's JSON on the last line.
"""

import io
import json
import logging
import tarfile
from pathlib import Path

import boto3
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, SourceCode
from sagemaker.train.distributed import Torchrun

HERE = Path(__file__).resolve().parent
logging.basicConfig(level=logging.INFO)

trainer = ModelTrainer(
    training_image="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
    source_code=SourceCode(source_dir=str(HERE / "src"), entry_script="ddp.py"),
    distributed=Torchrun(),
    compute=Compute(instance_type="ml.m5.xlarge", instance_count=2),
    base_job_name="allreduce-torchrun",
)
trainer.train(wait=True, logs=True)

job = trainer._latest_training_job
job.refresh()
bucket, _, key = job.model_artifacts.s3_model_artifacts.removeprefix("s3://").partition("/")
with tarfile.open(fileobj=io.BytesIO(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())) as model:
    print(json.dumps(json.load(model.extractfile("allreduce.json"))))
