"""The job spec: fields, durations, accelerators, errors with field paths and lines, overrides, config layers."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cloudtrain.errors import SpecError
from cloudtrain.spec import JobSpec, json_schema
from cloudtrain.specfile import apply_overrides, load_spec

FULL = """\
name: digits-cnn
code: .
entrypoint: train.py
args: ["--log-every", "50"]
hyperparameters: {lr: 0.001, batch_size: 64, epochs: 20}
framework: {name: pytorch, version: "2.5"}
resources: {accelerator: "A100:8", cpus: 8, memory_gib: 64, disk_gib: 100, nodes: 2,
            instance_type: {sagemaker: ml.p4d.24xlarge}}
distribution: {type: torchrun, processes_per_node: auto}
spot: {enabled: true, max_wait: 4h}
max_runtime: 2h
checkpoint: {enabled: true, every: 10m}
inputs: {train: s3://bucket/train/, extra: ./data/extra}
outputs: {model: {}}
env: {NCCL_DEBUG: WARN}
secrets: {WANDB_API_KEY: {env: WANDB_API_KEY}}
tags: {team: vision}
budget: {max_usd: 250}
sagemaker: {region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/Train", bucket: my-bucket}
azureml: {subscription_id: sub, resource_group: rg, workspace: ws, compute: gpu-cluster}
vertex: {project: proj, location: us-central1, staging_bucket: gs://staging}
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "data" / "extra").mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_full_example_loads_with_units(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, FULL)).spec
    assert spec.resources.accelerator.name == "A100" and spec.resources.accelerator.count == 8
    assert spec.max_runtime == timedelta(hours=2)
    assert spec.spot.max_wait == timedelta(hours=4)
    assert spec.checkpoint.every == timedelta(minutes=10)
    assert spec.resources.instance_type["sagemaker"] == "ml.p4d.24xlarge"
    assert spec.inputs["train"].scheme() == "s3"
    assert spec.inputs["extra"].uri == str((tmp_path / "data" / "extra").resolve())  # made absolute
    assert spec.code == str(tmp_path.resolve())
    assert spec.secrets["WANDB_API_KEY"].env == "WANDB_API_KEY"
    assert spec.model_dump(mode="json")["max_runtime"] == "2h"


def test_spec_is_frozen(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, FULL)).spec
    with pytest.raises(Exception):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("45s", 45), (120, 120)])
def test_durations(text: object, seconds: int) -> None:
    spec = JobSpec.model_validate({"name": "a", "code": ".", "entrypoint": "t.py", "max_runtime": text})
    assert spec.max_runtime.total_seconds() == seconds


def test_unknown_key_names_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nresources:\n  gpus: 2\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{path}:5: resources.gpus: unknown key" in caught.value.message


def test_a_misspelt_key_gets_the_closest_key_at_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nmax_runtim: 1h\n"
                           "spot: {enabled: true, max_wiat: 2h}\ninputs: {train: {uri: ., uir: x}}\nzzz: 1\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = caught.value.message
    assert f"{path}:4: max_runtim: unknown key; did you mean 'max_runtime'?" in message
    assert f"{path}:5: spot.max_wiat: unknown key; did you mean 'max_wait'?" in message
    assert f"{path}:6: inputs.train.uir: unknown key; did you mean 'uri'?" in message  # through the dict
    assert f"{path}:7: zzz: unknown key (see `cloudtrain schema`" in message  # nothing close: no guess
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nresources: {gpus: 1}\n"))
    assert "resources.gpus: unknown key; did you mean 'accelerator'?" in caught.value.message


def test_with_set_overrides_errors_name_the_override_and_keep_the_files_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nmax_runtime: soon\nresources: {cpus: 4}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path, ["resources.nodes=0"])
    message = caught.value.message
    assert f"{path}:4: max_runtime: 'soon' is not a duration" in message
    assert "--set resources.nodes: Input should be greater than or equal to 1" in message
    with pytest.raises(SpecError) as caught:  # --set made the mapping: no line of the file is to blame
        load_spec(path, ["max_runtime=1h", "inputs.train.uir=x"])
    message = caught.value.message
    assert "--set inputs.train.uir: inputs.train.uri: required key is missing" in message
    assert "--set inputs.train.uir: unknown key; did you mean 'uri'?" in message
    assert f"{path}:1" not in message


def test_bad_values_are_all_reported_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "name: Bad_Name\ncode: .\nentrypoint: train.py\nmax_runtime: soon\nresources: {accelerator: 'A100:x'}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = caught.value.message
    assert "3 problems" in message
    assert f"{path}:1: name:" in message
    assert f"{path}:4: max_runtime: 'soon' is not a duration" in message
    assert f"{path}:5: resources.accelerator:" in message and "A100:8" in message


def test_missing_required_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "code: required key is missing" in caught.value.message


def test_entrypoint_and_module_are_exclusive(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nmodule: pkg.train\n")
    with pytest.raises(SpecError, match="exactly one of 'entrypoint'"):
        load_spec(path)


def test_missing_files_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: nope.py\ninputs: {train: ./missing}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{path}:3: entrypoint: nope.py not found" in caught.value.message
    assert "inputs.train:" in caught.value.message and "missing does not exist" in caught.value.message
    load_spec(path, check_files=False)  # the fields themselves are fine
    with pytest.raises(SpecError) as caught:  # a path given by --set is blamed on the --set, not on the file's line
        load_spec(path, ["inputs.train=./elsewhere", "entrypoint=also-nope.py"])
    assert "--set inputs.train: inputs.train:" in caught.value.message and "elsewhere does not exist" in caught.value.message
    assert "--set entrypoint: entrypoint: also-nope.py not found" in caught.value.message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: [\n")
    with pytest.raises(SpecError, match=r"job.yaml:\d+: not valid YAML"):
        load_spec(path)


def test_no_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no job spec at"):
        load_spec(tmp_path / "nope.yaml")


def test_secret_needs_exactly_one_source() -> None:
    with pytest.raises(Exception, match="exactly one source"):
        JobSpec.model_validate({"name": "a", "code": ".", "entrypoint": "t.py", "secrets": {"K": {}}})


def test_unsupported_input_scheme() -> None:
    with pytest.raises(Exception, match="supported locations"):
        JobSpec.model_validate({"name": "a", "code": ".", "entrypoint": "t.py", "inputs": {"x": "ftp://h/x"}})


def test_overrides_any_field(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    spec = load_spec(path, ["resources.nodes=4", "hyperparameters.lr=0.01", "args.1=10", "spot.enabled=false",
                            "spot.max_wait=null", "tags.owner=me"]).spec
    assert spec.resources.nodes == 4
    assert spec.hyperparameters["lr"] == 0.01
    assert spec.args == ["--log-every", "10"]
    assert spec.spot.enabled is False
    assert spec.tags == {"team": "vision", "owner": "me"}


def test_bad_override_is_an_error_with_field(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    with pytest.raises(SpecError, match="resources.nodes"):
        load_spec(path, ["resources.nodes=zero"])
    with pytest.raises(SpecError, match="expected key.path=value"):
        apply_overrides({}, ["nodes"])


def test_config_precedence(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = isolated_home / "config" / "cloudtrain" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("sagemaker: {region: eu-west-1, bucket: user-bucket, role_arn: user-role}\nvertex: {project: user-proj}\n")
    (tmp_path / "cloudtrain.yaml").write_text("sagemaker: {bucket: project-bucket, role_arn: project-role}\n")
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nsagemaker: {role_arn: spec-role}\n")
    monkeypatch.setenv("CLOUDTRAIN_VERTEX_PROJECT", "env-proj")
    spec = load_spec(path).spec
    assert spec.sagemaker.region == "eu-west-1"  # user config
    assert spec.sagemaker.bucket == "project-bucket"  # project config beats user config
    assert spec.sagemaker.role_arn == "spec-role"  # spec beats config files
    assert spec.vertex.project == "env-proj"  # environment beats files
    assert load_spec(path, ["vertex.project=cli-proj"]).spec.vertex.project == "cli-proj"  # --set beats all


def test_cloud_sdk_variables_are_the_lowest_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "gcp-proj")
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nvertex: {project: spec-proj}\n")
    spec = load_spec(path).spec
    assert spec.sagemaker.region == "eu-west-1" and spec.vertex.project == "spec-proj"


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "cloudtrain.yaml").write_text("aws: {region: x}\n")
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\n")
    with pytest.raises(SpecError, match="cloudtrain.yaml: unknown config section"):
        load_spec(path)


def test_python_spec(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    path = tmp_path / "job.py"
    path.write_text("from cloudtrain.spec import JobSpec\njob = JobSpec(name='py-job', code='.', entrypoint='train.py', max_runtime='90m')\n")
    spec = load_spec(path).spec
    assert spec.name == "py-job" and spec.max_runtime == timedelta(minutes=90)


def test_spec_hash_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    assert load_spec(path).spec.spec_hash() == load_spec(path).spec.spec_hash()
    assert load_spec(path).spec.spec_hash() != load_spec(path, ["max_runtime=3h"]).spec.spec_hash()


def test_json_schema_describes_keys() -> None:
    schema = json_schema()
    json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert {"name", "code"} <= set(schema["required"])
    assert "max_runtime" in schema["properties"] and "resources" in schema["properties"]


@pytest.mark.parametrize("text", ["0.5s", "0s", "1.5s", "40d"])
def test_durations_are_whole_seconds_within_limits(text: str) -> None:
    with pytest.raises(Exception, match="duration|at most 28 days"):
        JobSpec.model_validate({"name": "a", "code": ".", "entrypoint": "t.py", "max_runtime": text})


def test_scalar_cloud_section_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\ncode: .\nentrypoint: train.py\nsagemaker: us-east-1\n")
    with pytest.raises(SpecError, match=r"job.yaml:4: sagemaker: the backend's settings are a mapping"):
        load_spec(path)
