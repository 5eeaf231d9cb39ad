"""The runtime contract: the same RunContext from the local, SageMaker, Azure ML and Vertex conventions."""

from __future__ import annotations

import sys

import io
import json
import re
from pathlib import Path

import pytest

from cloudtrain.runtime import METRIC_PATTERN, context, metric_regex
from cloudtrain.runtime.context import detect_environment, gcs_path
from cloudtrain.runtime.launch import parse


def test_local_mapping(tmp_path: Path) -> None:
    env = {
        "CLOUDTRAIN_RUN_DIR": str(tmp_path),
        "CLOUDTRAIN_MODEL_DIR": str(tmp_path / "m"),
        "CLOUDTRAIN_OUTPUT_DIR": str(tmp_path / "o"),
        "CLOUDTRAIN_CHECKPOINT_DIR": str(tmp_path / "c"),
        "CLOUDTRAIN_INPUTS": json.dumps({"train": "/data/train"}),
        "CLOUDTRAIN_HPS": json.dumps({"lr": 0.01, "epochs": 3, "name": "x"}),
        "CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS": "600",
    }
    ctx = context(env)
    assert ctx.environment == "local"
    assert ctx.inputs == {"train": Path("/data/train")}
    assert ctx.model_dir == tmp_path / "m" and ctx.model_dir.is_dir()
    assert ctx.checkpoint_dir == tmp_path / "c" and ctx.checkpoint_dir.is_dir()
    assert ctx.hyperparameters == {"lr": 0.01, "epochs": 3, "name": "x"}
    assert ctx.checkpoint_every_seconds == 600
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)


def test_sagemaker_mapping(tmp_path: Path) -> None:
    env = {
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_CHANNELS": json.dumps(["train", "extra"]),
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "SM_CHANNEL_EXTRA": "/opt/ml/input/data/extra",
        "SM_HPS": json.dumps({"lr": "0.001", "epochs": "5", "flag": "true", "arch": "resnet"}),
        "SM_HOSTS": json.dumps(["algo-1", "algo-2"]),
        "SM_CURRENT_HOST": "algo-2",
        "SM_NUM_GPUS": "4",
        "CLOUDTRAIN_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
    }
    ctx = context(env)
    assert ctx.environment == "sagemaker"
    assert ctx.inputs == {"train": Path("/opt/ml/input/data/train"), "extra": Path("/opt/ml/input/data/extra")}
    assert ctx.hyperparameters == {"lr": 0.001, "epochs": 5, "flag": True, "arch": "resnet"}
    assert (ctx.node_rank, ctx.num_nodes, ctx.rank, ctx.world_size, ctx.num_gpus) == (1, 2, 1, 2, 4)
    assert not ctx.is_main
    assert ctx.checkpoint_dir == tmp_path / "ckpt"
    assert ctx.model_dir == tmp_path / "model"


def test_sagemaker_default_checkpoint_dir_and_torchrun_ranks() -> None:
    env = {"SM_MODEL_DIR": "/opt/ml/model", "SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2",
           "RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}
    from cloudtrain.runtime.context import _sagemaker

    ctx = _sagemaker(env)
    assert ctx.checkpoint_dir == Path("/opt/ml/checkpoints")
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.node_rank) == (5, 1, 8, 1)


def test_vertex_mapping(tmp_path: Path) -> None:
    mount = tmp_path / "gcs"
    env = {
        "AIP_MODEL_DIR": "gs://bucket/jobs/j1/model/",
        "AIP_CHECKPOINT_DIR": "gs://bucket/jobs/j1/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/jobs/j1/logs/",
        "CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["h0:2222"], "workerpool1": ["h1:2222", "h2:2222"]},
                                    "task": {"type": "workerpool1", "index": 1}}),
        "CLOUDTRAIN_INPUTS": json.dumps({"train": "gs://data/train"}),
        "CLOUDTRAIN_HPS": json.dumps({"lr": 0.1}),
        "CLOUDTRAIN_GCS_MOUNT": str(mount),
    }
    ctx = context(env)
    assert ctx.environment == "vertex"
    assert ctx.model_dir == mount / "bucket/jobs/j1/model"
    assert ctx.checkpoint_dir == mount / "bucket/jobs/j1/checkpoints"
    assert ctx.tensorboard_dir == mount / "bucket/jobs/j1/logs"
    assert ctx.inputs == {"train": mount / "data/train"}
    assert (ctx.node_rank, ctx.num_nodes) == (2, 3)
    assert gcs_path("gs://b/x") == Path("/gcs/b/x")


def test_azureml_mapping_through_the_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    added, command = parse(["--input", "train=/mnt/azureml/inputs/train", "--output", "model=/mnt/azureml/outputs/model",
                            "--hps", '{"lr": 0.5}', "--", "python", "train.py", "--epochs", "2"])
    assert command == ["python", "train.py", "--epochs", "2"]
    env = {"AZUREML_RUN_ID": "run-1", "AZUREML_NODE_COUNT": "2", "NODE_RANK": "1", "RANK": "3", "LOCAL_RANK": "1",
           "WORLD_SIZE": "4", **added}
    ctx = context(env)
    assert ctx.environment == "azureml"
    assert ctx.inputs == {"train": Path("/mnt/azureml/inputs/train")}
    assert ctx.model_dir == Path("/mnt/azureml/outputs/model")
    assert ctx.output_dir == tmp_path / "outputs"
    assert ctx.hyperparameters == {"lr": 0.5}
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.node_rank, ctx.num_nodes) == (3, 1, 4, 1, 2)


def test_launcher_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit, match="after '--'"):
        parse(["--input", "a=b"])
    with pytest.raises(SystemExit, match="NAME=PATH"):
        parse(["--input", "nopath", "--", "python"])


def test_detection_order() -> None:
    assert detect_environment({"CLOUDTRAIN_RUN_DIR": "/r", "SM_MODEL_DIR": "/m"}) == "local"
    assert detect_environment({"SM_HOSTS": "[]"}) == "sagemaker"
    assert detect_environment({"CLUSTER_SPEC": "{}"}) == "vertex"
    assert detect_environment({"AZUREML_RUN_ID": "x"}) == "azureml"
    assert detect_environment({}) == "bare"


def test_log_metric_writes_json_and_a_parseable_line(tmp_path: Path) -> None:
    ctx = context({"CLOUDTRAIN_RUN_DIR": str(tmp_path)})
    out = io.StringIO()
    ctx._stdout = out
    ctx.log_metric("val_loss", 0.125, step=10)
    ctx.log_metric("val:acc", 0.9)
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["name"], r["value"], r.get("step")) for r in records] == [("val_loss", 0.125, 10), ("val:acc", 0.9, None)]
    lines = out.getvalue().splitlines()
    match = re.search(METRIC_PATTERN, lines[0])
    assert match and (match["name"], float(match["value"]), match["step"]) == ("val_loss", 0.125, "10")
    assert float(re.search(metric_regex("val:acc"), lines[1]).group(1)) == 0.9
    assert re.search(metric_regex("val"), lines[1]) is None  # one metric's regex never matches another


def test_log_metric_is_silent_off_the_main_process(tmp_path: Path) -> None:
    ctx = context({"CLOUDTRAIN_RUN_DIR": str(tmp_path), "RANK": "1", "WORLD_SIZE": "2"})
    out = io.StringIO()
    ctx._stdout = out
    ctx.log_metric("loss", 1.0)
    assert out.getvalue() == "" and not (tmp_path / "metrics.jsonl").exists()


def test_hp_converts_to_the_default_type(tmp_path: Path) -> None:
    ctx = context({"CLOUDTRAIN_RUN_DIR": str(tmp_path), "CLOUDTRAIN_HPS": json.dumps({"epochs": "3", "aug": "false", "lr": 1})})
    assert ctx.hp("epochs", 1) == 3
    assert ctx.hp("aug", True) is False
    assert ctx.hp("lr", 0.5) == 1.0 and isinstance(ctx.hp("lr", 0.5), float)
    assert ctx.hp("missing", 7) == 7


def test_runtime_imports_only_the_standard_library() -> None:
    """The runtime travels in the code bundle and runs in any container: module-level imports are
    stdlib only. Inside functions, only the entry shim may import the SDK a secret reference needs."""
    import ast

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    allowed = {"entry.py": {"boto3", "google", "azure"}, "context.py": {"mlflow"}}  # inside functions only
    for path in Path(__file__).resolve().parents[2].joinpath("cloudtrain", "runtime").glob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                root = name.split(".")[0]
                if root in stdlib or name.startswith("cloudtrain.runtime"):
                    continue
                assert id(node) not in top_level, f"{path.name} imports {name} at module level"
                assert root in allowed.get(path.name, set()), f"{path.name} imports {name}"


def test_a_vertex_trial_reports_its_metrics_where_hypertune_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = tmp_path / "hypertune" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "7")
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(metrics))
    ctx = context({"AIP_MODEL_DIR": str(tmp_path / "model"), "CLOUDTRAIN_ENVIRONMENT": "vertex"})
    ctx._stdout = io.StringIO()
    for step in range(105):
        ctx.log_metric("val_accuracy", step / 200, step=step)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 100 and lines[-1]["val_accuracy"] == str(104 / 200) and lines[-1]["trial"] == "7"  # the last 100
    assert lines[0]["global_step"] == "5"


def test_an_azure_ml_job_logs_its_metrics_to_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.chdir(tmp_path)  # an Azure ML job's ./outputs
    logged: list[tuple] = []
    monkeypatch.setitem(sys.modules, "mlflow", types.SimpleNamespace(log_metric=lambda *a, **k: logged.append((*a, k.get("step")))))
    ctx = context({"AZUREML_RUN_ID": "run-1"})
    assert ctx.environment == "azureml"
    ctx._stdout = io.StringIO()
    ctx.log_metric("val_loss", 0.5, step=1)  # no tracking server set: nothing sent
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "azureml://tracking")
    ctx.log_metric("val_loss", 0.25, step=3)
    assert logged == [("val_loss", 0.25, 3)]

    def failing(*args: object, **kwargs: object) -> None:
        raise ConnectionError("tracking server down")

    monkeypatch.setitem(sys.modules, "mlflow", types.SimpleNamespace(log_metric=failing))
    ctx.log_metric("val_loss", 0.125, step=4)  # warned once, the training goes on
