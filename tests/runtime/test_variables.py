"""Every job gets the other clouds' script variables, from its own context, never replacing the cloud's."""

from __future__ import annotations

import json
from pathlib import Path

from cloudtrain.runtime.context import detect_environment, read_context
from cloudtrain.runtime.variables import cloud_variables, missing_variables


def test_a_vertex_job_gets_sagemakers_variables_with_its_own_fuse_paths_and_keeps_its_gs_uri() -> None:
    environ = {"AIP_MODEL_DIR": "gs://b/jobs/j/model/", "AIP_CHECKPOINT_DIR": "gs://b/jobs/j/checkpoints/",
               "CLOUDTRAIN_INPUTS": json.dumps({"train": "gs://b/data/train"}), "CLOUDTRAIN_HPS": json.dumps({"lr": 0.1, "opt": "adam"}),
               "CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["a:1"], "workerpool1": ["b:1"]},
                                            "task": {"type": "workerpool1", "index": 0}})}
    added = missing_variables(read_context(environ), environ)
    assert added["SM_MODEL_DIR"] == "/gcs/b/jobs/j/model"
    assert added["SM_CHANNEL_TRAIN"] == "/gcs/b/data/train" and added["SM_CHANNELS"] == '["train"]'
    assert added["SM_HP_LR"] == "0.1" and added["SM_HP_OPT"] == "adam"
    assert json.loads(added["SM_HPS"]) == {"lr": 0.1, "opt": "adam"}
    assert added["SM_HOSTS"] == '["algo-1", "algo-2"]' and added["SM_CURRENT_HOST"] == "algo-2"
    assert "AIP_MODEL_DIR" not in added and "AIP_CHECKPOINT_DIR" not in added  # the cloud's own stay
    assert added["CLOUDTRAIN_ENVIRONMENT"] == "vertex"


def test_with_sagemakers_variables_added_a_job_still_knows_which_cloud_it_runs_on(tmp_path: Path) -> None:
    environ = {"AZUREML_RUN_ID": "run-1", "CLOUDTRAIN_AZUREML_OUTPUTS_DIR": str(tmp_path / "outputs")}
    environ.update(missing_variables(read_context(environ), environ))
    assert "SM_MODEL_DIR" in environ and "AIP_MODEL_DIR" in environ
    assert detect_environment(environ) == "azureml"
    assert read_context(environ).model_dir == tmp_path / "outputs" / "model"


def test_a_sagemaker_jobs_own_variables_are_never_replaced(tmp_path: Path) -> None:
    environ = {"SM_MODEL_DIR": "/opt/ml/model", "SM_HOSTS": '["algo-1"]', "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
               "SM_HPS": '{"epochs": 3}'}
    added = missing_variables(read_context(environ), environ)
    assert not {"SM_MODEL_DIR", "SM_HOSTS", "SM_CHANNEL_TRAIN", "SM_HPS"} & set(added)
    assert added["AIP_MODEL_DIR"] == "/opt/ml/model" and added["CLOUDTRAIN_ENVIRONMENT"] == "sagemaker"


def test_a_trials_own_values_are_what_the_variables_hold(tmp_path: Path) -> None:
    environ = {"CLOUDTRAIN_RUN_DIR": str(tmp_path), "CLOUDTRAIN_HPS": '{"lr": 0.1, "layers": [1, 2], "shuffle": true}'}
    variables = cloud_variables(read_context(environ), {"lr": 0.5, "layers": [1, 2], "shuffle": True})
    assert (variables["SM_HP_LR"], variables["SM_HP_LAYERS"], variables["SM_HP_SHUFFLE"]) == ("0.5", "[1, 2]", "true")
    assert "AIP_CHECKPOINT_DIR" not in variables  # no checkpoints asked for


def test_an_input_that_is_one_file_is_that_file_where_the_cloud_hands_its_folder(tmp_path: Path) -> None:
    channel = tmp_path / "input" / "data" / "table"
    channel.mkdir(parents=True)
    (channel / "table.csv").write_text("a,b\n")
    environ = {"SM_MODEL_DIR": str(tmp_path / "model"), "SM_CHANNELS": '["table"]', "SM_CHANNEL_TABLE": str(channel),
               "CLOUDTRAIN_INPUT_FILES": '{"table": "table.csv"}'}
    ctx = read_context(environ)
    assert ctx.inputs["table"] == channel / "table.csv"
    assert cloud_variables(ctx)["SM_CHANNEL_TABLE"] == str(channel)  # a channel is a folder


def test_which_inputs_are_one_file(tmp_path: Path) -> None:
    from cloudtrain.spec import Input

    (tmp_path / "t.csv").write_text("x")
    assert Input(uri=str(tmp_path / "t.csv")).file_name == "t.csv"
    assert Input(uri=str(tmp_path)).file_name is None
    assert Input(uri="s3://bucket/data/train.csv").file_name == "train.csv"
    assert Input(uri="s3://bucket/data/v1.0/").file_name is None
    assert Input(uri="s3://my.bucket").file_name is None  # a bucket, not an object
    assert Input(uri="https://host.example/datasets/iris.csv?sv=1").file_name == "iris.csv"
    assert Input(uri="gs://bucket/images").file_name is None
