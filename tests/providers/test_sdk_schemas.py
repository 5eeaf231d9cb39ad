"""The SDK schemas a dry run validates against (``cloudtrain/providers/data/``, written by
``scripts/export_sdk_schemas.py``): they are the installed SDKs' own, and validating with them
refuses exactly what the SDKs refuse (``aiplatform_v1.CustomJob.from_json`` /
``HyperparameterTuningJob.from_json``; botocore's ParamValidator over the session's sagemaker model;
azure-ai-ml's ``CommandJobSchema`` and ``SweepJobSchema`` as JSON Schema, checked against ``load_job`` in test_azureml_document.py).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from test_golden_requests import read_golden

from cloudtrain.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "export_sdk_schemas.py"


def exporter() -> Any:
    spec = importlib.util.spec_from_file_location("export_sdk_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exported_in_a_fresh_process(function: str) -> dict[str, Any]:
    """``export_sdk_schemas.<function>()`` in a new interpreter: azure-ai-ml widens its own schemas'
    fields once it has built a sweep or pipeline node in a process, and the shipped file is the
    schema that ``load_job`` uses in a fresh one."""
    import subprocess
    import sys

    code = (f"import importlib.util, json\nspec = importlib.util.spec_from_file_location('e', {str(SCRIPT)!r})\n"
            f"m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\nprint(json.dumps(m.{function}()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def shipped(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "cloudtrain" / "providers" / "data" / name).read_text())


# -- the shipped files are the installed SDKs' -----------------------------------------------------


def test_vertex_descriptors_are_the_installed_sdks() -> None:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from google.protobuf import descriptor_pb2

    def files(content: dict[str, Any]) -> dict[str, Any]:
        decoded = [descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(f["serialized"])) for f in content["files"]]
        assert [file.name for file in decoded] == [f["name"] for f in content["files"]]
        return {file.name: file for file in decoded}

    installed, ours = exporter().vertex_descriptors(), shipped("vertex_descriptors.json")
    hint = f"the installed SDK is {installed['source']}, the file says {ours['source']}: run scripts/export_sdk_schemas.py"
    assert set(files(ours)) == set(files(installed)), hint
    for name, file in files(installed).items():
        assert files(ours)[name] == file, f"{name} differs; {hint}"
    assert (ours["messages"], ours["accelerator_type"]) == (installed["messages"], installed["accelerator_type"]), hint
    assert set(ours["messages"]) == {"CustomJob", "HyperparameterTuningJob"}


def test_sagemaker_shapes_are_the_installed_botocores() -> None:
    pytest.importorskip("botocore")
    installed, ours = exporter().sagemaker_shapes(), shipped("sagemaker_shapes.json")
    hint = f"the installed SDK is {installed['source']}, the file says {ours['source']}: run scripts/export_sdk_schemas.py"
    assert ours["inputs"] == installed["inputs"], hint
    def ordered(shape: Any) -> str:  # member order counts: botocore's messages list members in model order
        return json.dumps(shape)

    changed = sorted(name for name in {*ours["shapes"], *installed["shapes"]}
                     if ordered(ours["shapes"].get(name)) != ordered(installed["shapes"].get(name)))
    assert not changed, f"shapes {changed[:10]} differ; {hint}"
    assert {"CreateTrainingJobRequest", "TrainingInstanceType", "HyperParameterTuningJobConfig"} <= set(ours["shapes"])


def test_ecr_partitions_are_the_installed_botocores() -> None:
    pytest.importorskip("botocore")
    import botocore.session

    installed, ours = exporter().ecr_partitions(), shipped("sagemaker_ecr_partitions.json")
    assert ours["partitions"] == installed["partitions"], \
        f"the installed SDK is {installed['source']}, the file says {ours['source']}: run scripts/export_sdk_schemas.py"
    endpoints = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    assert [p["partition"] for p in ours["partitions"]] == [p["partition"] for p in endpoints["partitions"]]
    assert "us-east-1" in ours["partitions"][0]["regions"]


def test_azureml_command_job_schema_is_the_installed_sdks() -> None:
    pytest.importorskip("azure.ai.ml")
    pytest.importorskip("marshmallow_jsonschema")
    installed, ours = exported_in_a_fresh_process("azureml_command_job_schema"), shipped("azureml_command_job_schema.json")
    assert ours["schema"] == installed["schema"], \
        f"the installed SDK is {installed['source']}, the file says {ours['source']}: run scripts/export_sdk_schemas.py"
    properties = ours["schema"]["definitions"]["CommandJobSchema"]["properties"]
    assert {"command", "environment", "resources", "distribution", "inputs", "outputs", "limits", "queue_settings"} <= set(properties)



def test_azureml_sweep_job_schema_is_the_installed_sdks() -> None:
    pytest.importorskip("azure.ai.ml")
    pytest.importorskip("marshmallow_jsonschema")
    installed, ours = exported_in_a_fresh_process("azureml_sweep_job_schema"), shipped("azureml_sweep_job_schema.json")
    assert ours["schema"] == installed["schema"], \
        f"the installed SDK is {installed['source']}, the file says {ours['source']}: run scripts/export_sdk_schemas.py"
    definitions = ours["schema"]["definitions"]
    assert {"sampling_algorithm", "search_space", "objective", "early_termination", "limits", "trial"} <= set(definitions["SweepJobSchema"]["properties"])
    assert {"command", "code", "environment", "resources", "distribution"} <= set(definitions["ParameterizedCommandSchema"]["properties"])

def test_ecr_hostname_as_botocores_partitions_give_it() -> None:
    pytest.importorskip("botocore")
    from botocore.regions import EndpointResolver
    import botocore.session

    from cloudtrain.providers.sagemaker_images import ecr_hostname

    resolver = EndpointResolver(botocore.session.get_session().get_component("data_loader").load_data("endpoints"))
    for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1"):
        assert ecr_hostname(region) == resolver.construct_endpoint("ecr", region)["hostname"], region  # the SDK's lookup


def test_reachable_shapes_follow_members_lists_and_maps() -> None:
    shapes = {
        "Root": {"type": "structure", "documentation": "d", "members": {"A": {"shape": "List", "documentation": "d"}}},
        "List": {"type": "list", "member": {"shape": "Map"}},
        "Map": {"type": "map", "key": {"shape": "Key"}, "value": {"shape": "Root"}},
        "Key": {"type": "string", "pattern": "[a-z]+"},
        "Unused": {"type": "string"},
    }
    out = exporter().reachable_shapes(shapes, ["Root"])
    assert sorted(out) == ["Key", "List", "Map", "Root"]
    assert out["Root"] == {"type": "structure", "members": {"A": {"shape": "List"}}}  # documentation left out


# -- Vertex AI: the same answers as the SDK's from_json ------------------------------------------


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None], str]]:
    """(what, change to a CustomJob request, the text the error names)"""
    def pool(job: dict[str, Any]) -> dict[str, Any]:
        return job["jobSpec"]["workerPoolSpecs"][0]

    return [
        ("unknown field", lambda j: pool(j)["machineSpec"].update(gpuType="T4"), "gpuType"),
        ("unknown enum name", lambda j: pool(j)["machineSpec"].update(acceleratorType="NVIDIA_TESLA_T5"), "NVIDIA_TESLA_T5"),
        ("wrong type", lambda j: pool(j).update(replicaCount="one"), "replicaCount"),
        ("object for a string", lambda j: j.update(displayName={"a": 1}), "displayName"),
        ("bad duration", lambda j: j["jobSpec"].update(scheduling={"timeout": "ten minutes"}), "timeout"),
        ("unknown strategy", lambda j: j["jobSpec"].update(scheduling={"strategy": "CHEAP"}), "CHEAP"),
        ("label value not a string", lambda j: j["labels"].update(team=3), "labels"),
        ("unknown top-level field", lambda j: j.update(region="us-central1"), "region"),
    ]


@pytest.mark.parametrize("case", ["single-gpu", "multinode-spot", "custom-image", "digits-sklearn"])
def test_vertex_goldens_parse_to_the_sdks_message(case: str) -> None:
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudtrain.providers.vertex_proto import parse

    golden = read_golden("vertex", case)
    sdk = aiplatform_v1.CustomJob.from_json(json.dumps(golden), ignore_unknown_fields=False)
    ours = parse("CustomJob", golden)
    assert ours.SerializeToString(deterministic=True) == aiplatform_v1.CustomJob.pb(sdk).SerializeToString(deterministic=True)


@pytest.mark.parametrize("what, change, named", _mutations(), ids=[m[0] for m in _mutations()])
def test_vertex_refuses_what_the_sdk_refuses(what: str, change: Callable[[dict[str, Any]], None], named: str) -> None:
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudtrain.providers.vertex_job import validate_request

    request = copy.deepcopy(read_golden("vertex", "single-gpu"))
    change(request)
    with pytest.raises(Exception) as sdk:
        aiplatform_v1.CustomJob.from_json(json.dumps(request), ignore_unknown_fields=False)
    with pytest.raises(SpecError) as ours:
        validate_request(request)
    assert named in ours.value.message and str(sdk.value) in ours.value.message  # the SDK's parser's own words
    assert ours.value.message.startswith("the Vertex AI CustomJob is not valid: ")


def test_vertex_tuning_job_parses_as_the_sdk_and_refuses_a_wrong_algorithm() -> None:
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudtrain.sweeps.vertex import validate_tuning_request

    trial = read_golden("vertex", "single-gpu")
    request = {"displayName": "t", "maxTrialCount": 4, "parallelTrialCount": 2, "trialJobSpec": trial["jobSpec"],
               "studySpec": {"metrics": [{"metricId": "loss", "goal": "MINIMIZE"}], "algorithm": "RANDOM_SEARCH",
                             "parameters": [{"parameterId": "lr", "doubleValueSpec": {"minValue": 0.001, "maxValue": 0.1},
                                             "scaleType": "UNIT_LOG_SCALE"}]}}
    sdk = aiplatform_v1.HyperparameterTuningJob.from_json(json.dumps(request), ignore_unknown_fields=False)
    ours = validate_tuning_request(request)
    assert ours.SerializeToString(deterministic=True) == \
        aiplatform_v1.HyperparameterTuningJob.pb(sdk).SerializeToString(deterministic=True)
    request["studySpec"]["algorithm"] = "HYPERBAND"
    with pytest.raises(Exception):
        aiplatform_v1.HyperparameterTuningJob.from_json(json.dumps(request), ignore_unknown_fields=False)
    with pytest.raises(SpecError, match="HyperparameterTuningJob is not valid: .*HYPERBAND"):
        validate_tuning_request(request)


def test_vertex_accelerator_names_are_the_sdks() -> None:
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudtrain.providers.vertex_job import accelerator_names

    assert accelerator_names() == {a.name for a in aiplatform_v1.AcceleratorType} - {"ACCELERATOR_TYPE_UNSPECIFIED"}
    assert "NVIDIA_TESLA_T4" in accelerator_names()


# -- SageMaker: the same answers as botocore over the session's whole service model -----------------


def _botocore_report(request: dict[str, Any], operation: str) -> str:
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    return ParamValidator().validate(request, shape).generate_report()


SAGEMAKER_MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown key", lambda r: r["ResourceConfig"].update(Gpus=1), "Gpus"),
    ("missing required", lambda r: r.pop("RoleArn"), "RoleArn"),
    ("wrong type", lambda r: r["ResourceConfig"].update(InstanceCount="2"), "InstanceCount"),
    ("below the minimum", lambda r: r.update(TrainingJobName=""), "Invalid length for parameter TrainingJobName"),
    ("unknown enum value", lambda r: r["AlgorithmSpecification"].update(TrainingInputMode="Stream"), "TrainingInputMode"),
    ("pattern", lambda r: r.update(TrainingJobName="no_underscores"), "TrainingJobName"),
    ("maximum", lambda r: r["ResourceConfig"].update(KeepAlivePeriodInSeconds=86400), "KeepAlivePeriodInSeconds"),
]


@pytest.mark.parametrize("what, change, named", SAGEMAKER_MUTATIONS, ids=[m[0] for m in SAGEMAKER_MUTATIONS])
def test_sagemaker_refuses_with_botocores_answer(what: str, change: Callable[[dict[str, Any]], None], named: str) -> None:
    pytest.importorskip("botocore")
    from cloudtrain.providers.sagemaker_request import input_shape, validate_request
    from botocore.validate import ParamValidator

    request = copy.deepcopy(read_golden("sagemaker", "single-gpu"))
    assert not ParamValidator().validate(request, input_shape("CreateTrainingJob")).has_errors()
    change(request)
    ours = ParamValidator().validate(request, input_shape("CreateTrainingJob")).generate_report()
    assert ours == _botocore_report(request, "CreateTrainingJob")  # the same report as over the whole model
    with pytest.raises(SpecError) as caught:
        validate_request(request)
    assert named in caught.value.message and "CreateTrainingJob request is not valid" in caught.value.message


def test_sagemaker_tuning_shape_is_botocores() -> None:
    pytest.importorskip("botocore")
    from cloudtrain.providers.sagemaker_request import input_shape
    from cloudtrain.sweeps.sagemaker import OPERATION, validate_tuning_request
    from botocore.validate import ParamValidator

    trial = read_golden("sagemaker", "single-gpu")
    request = {"HyperParameterTuningJobName": "t-1", "HyperParameterTuningJobConfig": {
        "Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4},
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
        "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1"}]}},
        "TrainingJobDefinition": {"StaticHyperParameters": trial["HyperParameters"], "RoleArn": trial["RoleArn"],
                                  "AlgorithmSpecification": trial["AlgorithmSpecification"],
                                  "OutputDataConfig": trial["OutputDataConfig"], "ResourceConfig": trial["ResourceConfig"],
                                  "StoppingCondition": trial["StoppingCondition"]}}
    validate_tuning_request(request)
    request["HyperParameterTuningJobConfig"]["Strategy"] = "Annealing"
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = "2"
    ours = ParamValidator().validate(request, input_shape(OPERATION)).generate_report()
    assert ours == _botocore_report(request, OPERATION) and "MaxParallelTrainingJobs" in ours
    with pytest.raises(SpecError, match="Strategy: 'Annealing' is not one of"):
        validate_tuning_request(request)


# -- the dry run loads neither SDK's heavy modules -----------------------------------------------------

_PROBE = """
import runpy, sys
sys.argv = ["cloudtrain", "submit", sys.argv[1], "--cloud", sys.argv[2], "--dry-run"]
try:
    runpy.run_module("cloudtrain", run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
heavy = ("google.cloud.aiplatform_v1", "google.cloud.aiplatform", "botocore.session", "botocore.client", "boto3")
print("HEAVY", sorted(m for m in heavy if m in sys.modules))
"""


@pytest.mark.parametrize("cloud", ["sagemaker", "vertex"])
def test_dry_run_imports_no_sdk_client(cloud: str, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLOUDTRAIN_")}, "CLOUDTRAIN_HOME": str(tmp_path),
           "CLOUDTRAIN_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/Training", "CLOUDTRAIN_SAGEMAKER_BUCKET": "stage",
           "CLOUDTRAIN_VERTEX_PROJECT": "proj", "CLOUDTRAIN_VERTEX_STAGING_BUCKET": "gs://stage"}
    spec = tmp_path / "job.yaml"
    spec.write_text("name: probe\ncode: .\nentrypoint: train.py\nresources: {accelerator: T4}\n"
                    "framework: {name: pytorch, version: '2.4'}\nmax_runtime: 1h\n")
    (tmp_path / "train.py").write_text("print('hi')\n")
    result = subprocess.run([sys.executable, "-c", _PROBE, str(spec), cloud], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{cloud} request for probe-" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-500:]

