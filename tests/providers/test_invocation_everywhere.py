"""An unchanged argparse script, a shell ``command:`` and ``setup:`` steps run the same on every
backend: the local executor and the three emulators (the clouds' SDKs, the cloud's own data paths)."""

from __future__ import annotations

import json
from pathlib import Path

from cloudtrain.providers.base import JobState
from cloudtrain.specfile import load_spec
from cloudtrain.testing import Backend

JOB_TIMEOUT = 300.0

ARGPARSE_SCRIPT = """
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--data", required=True)
args = parser.parse_args()
files = sorted(os.listdir(args.data))
first = open(os.path.join(args.data, files[0])).read().strip()
print("SEEN " + json.dumps({"lr": args.lr, "epochs": args.epochs, "files": files, "first": first,
                             "data_is_absolute": os.path.isabs(args.data)}), flush=True)
"""

ARGPARSE_SPEC = """
name: argparse-everywhere
code: .
entrypoint: train.py
args: [--data, "${{inputs.train}}"]
hyperparameters: {lr: 0.01, epochs: 3}
inputs: {train: ./data}
framework: {name: sklearn}
resources: {cpus: 2}
max_runtime: 10m
"""

SHELL_SPEC = """
name: shell-everywhere
code: .
setup: ["echo prepared > prepared.txt"]
command: "bash run.sh --epochs ${{hyperparameters.epochs}} --data ${{inputs.train}}"
hyperparameters: {epochs: 2}
hyperparameters_as_args: false
inputs: {train: ./data}
framework: {name: sklearn}
resources: {cpus: 2}
max_runtime: 10m
"""

SHELL_SCRIPT = """#!/bin/bash
set -euo pipefail
echo "SHELL args=$* setup=$(cat prepared.txt) first=$(cat "$4"/part-0.csv) bash=${BASH_VERSION:+yes}"
"""


def _project(root: Path, spec: str, files: dict[str, str]) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "part-0.csv").write_text("1,2\n")
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "job.yaml").write_text(spec)
    return root / "job.yaml"


def _run(backend: Backend, spec_path: Path) -> str:
    runner = backend.runner
    record = runner.submit(runner.plan(load_spec(spec_path, backend.overrides), backend.name)).record
    _, status = runner.wait(record.id, poll_seconds=0.1, timeout=JOB_TIMEOUT)
    logs = "\n".join(runner.logs(record.id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    return logs


def _line(logs: str, prefix: str) -> str:
    lines = [line[line.index(prefix) + len(prefix):] for line in logs.splitlines() if prefix in line]
    assert lines, logs
    return lines[-1]


def test_an_unchanged_argparse_script_gets_its_flags_and_a_real_data_path(backend: Backend, tmp_path: Path) -> None:
    logs = _run(backend, _project(tmp_path / "job", ARGPARSE_SPEC, {"train.py": ARGPARSE_SCRIPT}))
    assert json.loads(_line(logs, "SEEN ")) == {"lr": 0.01, "epochs": 3, "files": ["part-0.csv"], "first": "1,2",
                                                "data_is_absolute": True}


def test_a_shell_command_runs_under_bash_after_its_setup_steps(backend: Backend, tmp_path: Path) -> None:
    logs = _run(backend, _project(tmp_path / "job", SHELL_SPEC, {"run.sh": SHELL_SCRIPT}))
    shown = _line(logs, "SHELL ")
    assert shown.startswith("args=--epochs 2 --data /"), shown
    assert shown.endswith("setup=prepared first=1,2 bash=yes"), shown


# Written the way the SageMaker examples write their scripts (its paths as argparse defaults from
# the toolkit's variables), with a Vertex example's model directory beside them.
CLOUD_VARIABLES_SCRIPT = """
import argparse, json, os
from cloudtrain.runtime import context
parser = argparse.ArgumentParser()
parser.add_argument("--max_leaf_nodes", type=int, default=-1)
parser.add_argument("--output-data-dir", type=str, default=os.environ["SM_OUTPUT_DATA_DIR"])
parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
args = parser.parse_args()
rows = [open(os.path.join(args.train, name)).read().strip() for name in sorted(os.listdir(args.train))]
with open(os.path.join(args.model_dir, "model.txt"), "w") as handle:
    handle.write(str(args.max_leaf_nodes))
vertex_model = os.environ["AIP_MODEL_DIR"]
print("SEEN " + json.dumps({"rows": rows, "leaves": args.max_leaf_nodes, "hps": json.loads(os.environ["SM_HPS"]),
                             "hp_env": os.environ["SM_HP_MAX_LEAF_NODES"], "hosts": json.loads(os.environ["SM_HOSTS"]),
                             "same_model_dir": context().model_dir == context().model_dir.__class__(args.model_dir),
                             "vertex_model_dir_set": bool(vertex_model), "environment": context().environment}), flush=True)
"""

CLOUD_VARIABLES_SPEC = """
name: cloud-variables-everywhere
code: .
entrypoint: train.py
hyperparameters: {max_leaf_nodes: 7}
inputs: {train: ./data}
framework: {name: sklearn}
resources: {cpus: 2}
max_runtime: 10m
"""


def test_a_script_reading_sagemaker_and_vertex_variables_runs_unchanged_everywhere(backend: Backend, tmp_path: Path) -> None:
    logs = _run(backend, _project(tmp_path / "job", CLOUD_VARIABLES_SPEC, {"train.py": CLOUD_VARIABLES_SCRIPT}))
    seen = json.loads(_line(logs, "SEEN "))
    assert seen == {"rows": ["1,2"], "leaves": 7, "hps": {"max_leaf_nodes": 7}, "hp_env": "7", "hosts": ["algo-1"],
                    "same_model_dir": True, "vertex_model_dir_set": True, "environment": backend.name}


FILE_INPUT_SCRIPT = """
import argparse, json, os
from cloudtrain.runtime import context
parser = argparse.ArgumentParser()
parser.add_argument("--table", required=True)
args = parser.parse_args()
print("SEEN " + json.dumps({"arg": open(args.table).read().strip(), "context": open(context().inputs["table"]).read().strip(),
                             "channel": open(os.path.join(os.environ["SM_CHANNEL_TABLE"], "table.csv")).read().strip()}), flush=True)
"""

FILE_INPUT_SPEC = """
name: file-input-everywhere
code: .
entrypoint: train.py
args: [--table, "${{inputs.table}}"]
inputs: {table: ./tables/table.csv}
framework: {name: sklearn}
resources: {cpus: 2}
max_runtime: 10m
"""


def test_an_input_that_is_one_file_reaches_the_script_as_that_file_everywhere(backend: Backend, tmp_path: Path) -> None:
    root = tmp_path / "job"
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "table.csv").write_text("a,b\n")
    spec = _project(root, FILE_INPUT_SPEC, {"train.py": FILE_INPUT_SCRIPT})
    assert json.loads(_line(_run(backend, spec), "SEEN ")) == {"arg": "a,b", "context": "a,b", "channel": "a,b"}
