"""What the invocation features render into each cloud's request (validated by each SDK on render):
flags and placeholders, output and checkpoint locations, per-cloud images, metric regexes, Azure
URL inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudtrain.errors import SpecError, UnsupportedFeatureError
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

SETTINGS = ["sagemaker.role_arn=arn:aws:iam::123456789012:role/Training", "sagemaker.bucket=stage",
            "azureml.subscription_id=00000000-0000-0000-0000-000000000000", "azureml.resource_group=rg",
            "azureml.workspace=ws", "vertex.project=proj", "vertex.staging_bucket=gs://stage"]
SPEC = """
name: argparse-job
code: .
entrypoint: train.py
args: [--data, "${{inputs.train}}", --model-dir, "${{model_dir}}", --run, "${{job_name}}"]
hyperparameters: {lr: 0.01, epochs: 3}
framework: {name: pytorch, version: "2.2"}
resources: {cpus: 4}
inputs: {train: ./data}
max_runtime: 1h
"""


def spec_file(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text(text)
    return tmp_path / "job.yaml"


def render(tmp_path: Path, cloud: str, *overrides: str, text: str = SPEC) -> tuple[object, dict]:
    runner = Runner()
    plan = runner.plan(load_spec(spec_file(tmp_path, text), [*SETTINGS, *overrides]), cloud)
    return plan, runner.render(plan).payload


def container_env(cloud: str, payload: dict) -> dict[str, str]:
    if cloud == "sagemaker":
        return payload["Environment"]
    if cloud == "azureml":
        return payload["environment_variables"]
    return {item["name"]: item["value"] for item in payload["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]}


@pytest.mark.parametrize("cloud", ["sagemaker", "azureml", "vertex"])
def test_flags_and_placeholders_reach_every_cloud(tmp_path: Path, cloud: str) -> None:
    plan, payload = render(tmp_path, cloud)
    env = container_env(cloud, payload)
    args = json.loads(env["CLOUDTRAIN_ARGS"])
    assert args == ["--data", "${{inputs.train}}", "--model-dir", "${{model_dir}}", "--run", plan.job_name]
    assert env["CLOUDTRAIN_HP_FLAGS"] == "1"  # paths and the hyperparameters' flags are put in inside the job, by the entry shim


def test_output_and_checkpoint_locations_on_sagemaker(tmp_path: Path) -> None:
    _, payload = render(tmp_path, "sagemaker", "outputs.model=s3://results/models/", "checkpoint.enabled=true",
                        "checkpoint.uri=s3://results/ckpt/run-1/")
    assert payload["OutputDataConfig"] == {"S3OutputPath": "s3://results/models/"}
    assert payload["CheckpointConfig"]["S3Uri"] == "s3://results/ckpt/run-1/"
    _, again = render(tmp_path, "sagemaker", "checkpoint.enabled=true", "checkpoint.uri=s3://results/ckpt/run-1/")
    assert again["CheckpointConfig"]["S3Uri"] == "s3://results/ckpt/run-1/"  # the same on a resubmission
    with pytest.raises(SpecError, match="checkpoint.uri: gs://x/ is not an s3:// location"):
        render(tmp_path, "sagemaker", "checkpoint.enabled=true", "checkpoint.uri=gs://x/")
    with pytest.raises(SpecError, match="one S3OutputPath"):
        render(tmp_path, "sagemaker", "outputs.a=s3://one/", "outputs.b=s3://two/")


def test_output_and_checkpoint_locations_on_vertex(tmp_path: Path) -> None:
    _, payload = render(tmp_path, "vertex", "outputs.model=gs://results/run-1", "outputs.report=gs://results/report",
                        "checkpoint.enabled=true", "checkpoint.uri=gs://results/ckpt/")
    assert payload["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": "gs://results/run-1/"}
    env = container_env("vertex", payload)
    assert json.loads(env["CLOUDTRAIN_OUTPUTS"]) == {"report": "gs://results/report/"}
    assert env["CLOUDTRAIN_CHECKPOINT_URI"] == "gs://results/ckpt/"


def test_output_and_checkpoint_locations_on_azureml(tmp_path: Path) -> None:
    _, payload = render(tmp_path, "azureml", "outputs.model=azureml://datastores/results/paths/run-1/",
                        "checkpoint.enabled=true", "checkpoint.uri=azureml://datastores/results/paths/ckpt/")
    assert payload["outputs"]["model"]["path"] == "azureml://datastores/results/paths/run-1/"
    assert payload["outputs"]["checkpoints"]["path"] == "azureml://datastores/results/paths/ckpt/"
    assert "--output checkpoints=${{outputs.checkpoints}}" in payload["command"]


def test_images_per_cloud_and_curated_environments_by_name(tmp_path: Path) -> None:
    images = ["image.sagemaker=123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
              "image.azureml=azureml:AzureML-lightgbm-3.3@latest"]
    _, sagemaker = render(tmp_path, "sagemaker", *images)
    _, azureml = render(tmp_path, "azureml", *images)
    _, vertex = render(tmp_path, "vertex", *images)
    assert sagemaker["AlgorithmSpecification"]["TrainingImage"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1"
    assert azureml["environment"] == "azureml:AzureML-lightgbm-3.3@latest"
    assert vertex["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"].startswith("us-docker.pkg.dev/vertex-ai/training/pytorch-")
    with pytest.raises(SpecError, match="image.sagemkr: no backend is named 'sagemkr'; did you mean 'sagemaker'"):
        render(tmp_path, "vertex", "image.sagemkr=x")
    text = SPEC.replace('framework: {name: pytorch, version: "2.2"}\n', "")
    with pytest.raises(SpecError, match="Vertex AI needs a container"):
        render(tmp_path, "vertex", "image.sagemaker=x", text=text)


def test_metric_definitions_with_their_own_regex(tmp_path: Path) -> None:
    _, payload = render(tmp_path, "sagemaker", "metrics=[val_loss, {name: 'test loss', regex: 'average test loss: ([0-9.]+)'}]")
    definitions = payload["AlgorithmSpecification"]["MetricDefinitions"]
    assert definitions[1] == {"Name": "test loss", "Regex": "average test loss: ([0-9.]+)"}
    assert definitions[0]["Name"] == "val_loss" and "cloudtrain-metric name=val_loss" in definitions[0]["Regex"]
    with pytest.raises(SpecError, match="needs a group capturing the value"):
        render(tmp_path, "sagemaker", "metrics=[{name: loss, regex: 'loss: [0-9.]+'}]")
    with pytest.raises(SpecError, match="give a regex for other names"):
        render(tmp_path, "sagemaker", "metrics=['test loss']")


@pytest.mark.parametrize("uri, kind", [("https://data.example.org/digits/train.csv", "uri_file"),
                                       ("wasbs://data@account.blob.core.windows.net/digits/", "uri_folder")])
def test_azureml_url_inputs_render_with_their_path(tmp_path: Path, uri: str, kind: str) -> None:
    _, payload = render(tmp_path, "azureml", f"inputs.train={uri}")
    assert payload["inputs"]["train"] == {"type": kind, "path": uri}
    with pytest.raises(UnsupportedFeatureError, match="inputs.train: wasbs://"):
        render(tmp_path, "sagemaker", "inputs.train=wasbs://data@account.blob.core.windows.net/digits/")


BUILTIN = """
name: builtin-xgboost
code: .
image: {sagemaker: 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1,
        vertex: us-docker.pkg.dev/vertex-ai/training/xgboost-cpu.1-7:latest}
hyperparameters: {num_round: 50, objective: "multi:softmax", num_class: 10}
hyperparameters_as_args: false
resources: {cpus: 4}
inputs:
  train: {uri: s3://data/digits/train/, content_type: text/csv, mode: FastFile, distribution: ShardedByS3Key}
max_runtime: 1h
"""


def test_a_built_in_algorithm_runs_the_container_s_own_entrypoint(tmp_path: Path) -> None:
    _, payload = render(tmp_path, "sagemaker", text=BUILTIN)
    assert payload["HyperParameters"] == {"num_round": "50", "objective": "multi:softmax", "num_class": "10"}  # no script mode
    assert payload["InputDataConfig"] == [{"ChannelName": "train", "ContentType": "text/csv", "InputMode": "FastFile",
                                           "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/digits/train/",
                                                                           "S3DataDistributionType": "ShardedByS3Key"}}}]
    assert "CLOUDTRAIN_ENTRYPOINT" not in payload["Environment"]
    _, vertex = render(tmp_path, "vertex", "inputs.train=gs://data/digits/train/", text=BUILTIN)
    container = vertex["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    assert "command" not in container and container["imageUri"].startswith("us-docker.pkg.dev/vertex-ai/training/xgboost")
    with pytest.raises(UnsupportedFeatureError, match="Azure ML command job runs a command"):
        render(tmp_path, "azureml", "inputs.train=https://data.example.org/train.csv", "image.azureml=azureml:AzureML-lightgbm-3.3@latest",
               text=BUILTIN)
    with pytest.raises(SpecError, match="an image whose own entrypoint runs"):
        render(tmp_path, "sagemaker", "image=null", text=BUILTIN)
