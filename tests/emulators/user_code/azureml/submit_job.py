"""Train src/train.py on Azure ML with the local ./local_data folder as input, follow its log and
download its outputs (the model lands in ./downloads/named-outputs/model/)."""

import sys

from azure.ai.ml import Input, MLClient, Output, command
from azure.ai.ml.entities import Environment
from azure.identity import DefaultAzureCredential

SUBSCRIPTION_ID = "6a1c9e4f-2b7d-4c3a-9f10-5e8d2b4a7c61"
RESOURCE_GROUP = "ml-team"
WORKSPACE = "ml-workspace"

# a curated environment's name (e.g. AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest) or our own image + conda file
environment = sys.argv[1] if len(sys.argv) > 1 else Environment(
    image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest", conda_file="./environment/conda.yaml")

ml_client = MLClient(DefaultAzureCredential(), SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE)

job = command(
    code="./src",
    command="python train.py --data ${{inputs.data}} --out ${{outputs.model}}",
    inputs={"data": Input(type="uri_folder", path="./local_data")},
    outputs={"model": Output(type="uri_folder")},
    environment=environment,
    compute="cpu-cluster",
    experiment_name="linear-fit",
    display_name="linear-fit-on-local-data",
)

returned_job = ml_client.jobs.create_or_update(job)
print(f"submitted job {returned_job.name}", flush=True)
ml_client.jobs.stream(returned_job.name)
ml_client.jobs.download(returned_job.name, download_path="./downloads", all=True)
print(f"downloaded the outputs of {returned_job.name} to ./downloads", flush=True)
