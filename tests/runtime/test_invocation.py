"""Hyperparameters as flags and ${{...}} placeholders: rendered once, resolved where the job runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudtrain.errors import SpecError
from cloudtrain.providers import JobState
from cloudtrain.runner import Runner
from cloudtrain.runtime.invocation import PlaceholderError, check, hyperparameter_flags, render_args, resolve
from cloudtrain.specfile import load_spec

ARGPARSE_SCRIPT = """
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--layers", type=int, nargs="+", required=True)
parser.add_argument("--shuffle", type=lambda text: text == "true", required=True)
parser.add_argument("--model-dir", required=True)
args = parser.parse_args()
with open(os.path.join(args.model_dir, "seen.json"), "w") as handle:
    json.dump({**vars(args), "files": sorted(os.listdir(args.data))}, handle)
"""


def test_flags_render_the_way_argparse_expects() -> None:
    assert hyperparameter_flags({"lr": 0.01, "epochs": 3, "opt": "adam", "shuffle": True, "wd": False, "layers": [64, 128]}) == [
        "--lr", "0.01", "--epochs", "3", "--opt", "adam", "--shuffle", "true", "--wd", "false", "--layers", "64", "128"]
    assert render_args(["--x", "${{hyperparameters.lr}}", "${{inputs.train}}", "${{job_name}}"], {"lr": 0.5}, True, "job-1") == [
        "--x", "0.5", "${{inputs.train}}", "job-1", "--lr", "0.5"]
    assert render_args(["a"], {"lr": 0.5}, False, "job-1") == ["a"]


def test_placeholders_resolve_and_unknown_ones_are_refused() -> None:
    assert resolve("--data=${{ inputs.train }}/x", {"inputs.train": "/d"}) == "--data=/d/x"
    with pytest.raises(PlaceholderError, match="has no value"):
        resolve("${{model_dir}}", {})
    with pytest.raises(PlaceholderError, match="no input 'test'.*defined: train"):
        check(["${{inputs.test}}"], ["train"], [], [])
    with pytest.raises(PlaceholderError, match="not a placeholder"):
        check(["${{datasets.x}}"], [], [], [])
    with pytest.raises(PlaceholderError, match="checkpoint.enabled"):
        check(["${{checkpoint_dir}}"], [], [], [], checkpoints=False)


def write(tmp_path: Path, spec: str, script: str = ARGPARSE_SCRIPT, name: str = "train.py") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "part-0.csv").write_text("1,2\n")
    (tmp_path / name).write_text(script)
    (tmp_path / "job.yaml").write_text(spec)
    return tmp_path / "job.yaml"


ARGPARSE_SPEC = """
name: argparse-job
code: .
entrypoint: train.py
args: [--data, "${{inputs.train}}", --model-dir, "${{model_dir}}"]
hyperparameters: {lr: 0.01, epochs: 3, layers: [64, 128], shuffle: true}
inputs: {train: ./data}
"""


def test_an_unchanged_argparse_script_runs_locally_with_its_flags_and_data(tmp_path: Path) -> None:
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(write(tmp_path, ARGPARSE_SPEC)), "local"))
    assert status.state is JobState.SUCCEEDED, "\n".join(runner.logs(record.id))
    seen = json.loads((Path(record.details["run_dir"]) / "model" / "seen.json").read_text())
    assert seen == {"lr": 0.01, "epochs": 3, "layers": [64, 128], "shuffle": True, "files": ["part-0.csv"],
                    "data": str((tmp_path / "data").resolve()), "model_dir": str(Path(record.details["run_dir"]) / "model")}


def test_flags_can_be_turned_off_and_unknown_placeholders_are_spec_errors(tmp_path: Path) -> None:
    spec = write(tmp_path, ARGPARSE_SPEC)
    runner = Runner()
    plan = runner.plan(load_spec(spec, ["hyperparameters_as_args=false"]), "local")
    assert "--lr" not in runner.render(plan).payload["nodes"][0]["argv"]
    with pytest.raises(SpecError, match=r"job.yaml:5: args: \$\{\{inputs.test\}\}: the spec has no input 'test'"):
        load_spec(spec, ["args=[--data, '${{inputs.test}}']"])


def test_shell_command_and_setup_run_under_bash_in_the_code_dir(tmp_path: Path) -> None:
    spec = write(tmp_path, "name: shell-job\ncode: .\ncommand: 'bash run.sh --epochs ${{hyperparameters.epochs}} --data ${{inputs.train}}'\n"
                           "setup: ['echo prepared > setup.out']\nhyperparameters: {epochs: 3}\ninputs: {train: ./data}\n",
                 script='echo "run.sh in $(pwd): $*"; test -f setup.out\n', name="run.sh")
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec), "local"))
    logs = list(runner.logs(record.id))
    assert status.state is JobState.SUCCEEDED, logs
    assert logs == [f"run.sh in {tmp_path.resolve()}: --epochs 3 --data {(tmp_path / 'data').resolve()}"]


def test_a_sh_entrypoint_runs_under_bash_not_python(tmp_path: Path) -> None:
    spec = write(tmp_path, "name: sh-entry\ncode: .\nentrypoint: train.sh\nhyperparameters: {epochs: 2}\n",
                 script='set -eu\necho "bash $BASH_VERSION args $*" | cut -c1-4,-100\n', name="train.sh")
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec), "local"))
    assert status.state is JobState.SUCCEEDED
    assert list(runner.logs(record.id))[0].startswith("bash") and "args --epochs 2" in list(runner.logs(record.id))[0]


def test_missing_requirements_are_reported_locally_not_installed(tmp_path: Path) -> None:
    spec = write(tmp_path, ARGPARSE_SPEC)
    (tmp_path / "requirements.txt").write_text("# pinned\npyyaml>=6\nno-such-package-cloudtrain==1.0\n")
    with pytest.raises(SpecError, match="requirements.txt names packages this environment lacks: no-such-package-cloudtrain==1.0"):
        Runner().plan(load_spec(spec), "local")


def test_a_tuning_services_values_on_the_command_line_are_read() -> None:
    from cloudtrain.runtime.invocation import argv_values

    names = ["lr", "x", "layers"]
    assert argv_values(["--lr=0.5", "--other", "1", "-x", "3.5"], names) == {"lr": "0.5", "x": "3.5"}  # Vertex, SageMaker
    assert argv_values(["--lr", "0.1", "--lr", "0.2", "--unknown=4"], names) == {"lr": "0.2"}
    assert argv_values(["--lr"], names) == {}


def test_the_entry_shim_gives_the_script_the_trials_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from cloudtrain.runtime import entry

    import shutil

    code = tmp_path / "bundle"  # a code bundle: the code and cloudtrain/runtime, as the providers stage it
    shutil.copytree(Path(entry.__file__).parent, code / "cloudtrain" / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (code / "cloudtrain" / "__init__.py").write_text("")
    (code / "train.py").write_text("import json, sys\nfrom cloudtrain.runtime import context\n"
                                   "print(json.dumps({'argv': sys.argv[1:], 'hp': context().hyperparameters}))\n")
    env = {"PATH": "/usr/bin:/bin", "CLOUDTRAIN_ENVIRONMENT": "vertex", "CLOUDTRAIN_JOB_ID": "trial-7",
           "CLOUDTRAIN_ENTRYPOINT": "train.py", "CLOUDTRAIN_ARGS": json.dumps(["--lr-copy", "${{hyperparameters.lr}}", "--run", "trial-7"]),
           "CLOUDTRAIN_HP_FLAGS": "1", "CLOUDTRAIN_HPS": json.dumps({"lr": 0.01, "epochs": 3}),
           "AIP_MODEL_DIR": str(tmp_path / "model")}
    out = subprocess.run([sys.executable, str(code / "cloudtrain" / "runtime" / "entry.py"), "--lr=0.25"], env=env, cwd=code,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["argv"] == ["--lr-copy", "0.25", "--run", "trial-7", "--lr", "0.25", "--epochs", "3"]
    assert seen["hp"] == {"lr": 0.25, "epochs": 3}  # context().hp() agrees with the flags
