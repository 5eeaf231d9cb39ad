"""Azure ML job YAMLs compared with golden files, loaded back with ``azure.ai.ml.load_job`` and
validated with the SDK's own rules; plan-time refusals and field-named validation errors.

Regenerate after an intended change with ``CLOUDTRAIN_UPDATE_GOLDEN=1 pytest tests/providers/test_golden_azureml.py``
and review the diff. Paths in the goldens are relative to the golden file (``load_job`` resolves
them from there), so they do not depend on where the repository is checked out.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

pytest.importorskip("azure.ai.ml")

from cloudtrain.catalog import load_catalog  # noqa: E402
from cloudtrain.errors import SpecError, UnsupportedFeatureError  # noqa: E402
from cloudtrain.plan import make_plan  # noqa: E402
from cloudtrain.providers.registry import get_provider  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "azureml"
FIXED = dict(created_at=datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc), token="c0ffee")
WORKSPACE = ["azureml.subscription_id=00000000-0000-0000-0000-000000000000", "azureml.resource_group=rg",
             "azureml.workspace=ws", "azureml.region=eastus"]
#: golden name -> (spec file, overrides)
CASES = {
    "single-gpu": ("single-gpu.yaml", []),
    "custom-image": ("custom-image.yaml", WORKSPACE),
    "multinode-spot": ("azureml-multinode-spot.yaml", []),
}


def plan_for(spec_file: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    spec = load_spec(HERE / "specs" / spec_file, overrides).spec
    return make_plan(spec, "azureml", catalog=load_catalog(), **FIXED)


def render(spec_file: str, overrides: list[str]) -> dict:
    plan = plan_for(spec_file, overrides)
    provider = get_provider("azureml")
    provider.check(plan)
    return relative_paths(provider.render(plan).payload)


def relative_paths(document: dict) -> dict:
    """Absolute local paths (code, local inputs) made relative to the golden directory."""
    def rel(path: str) -> str:
        return os.path.relpath(path, GOLDEN) if os.path.isabs(path) else path

    document = dict(document, code=rel(document["code"]))
    for item in (document.get("inputs") or {}).values():
        item["path"] = rel(item["path"])
    return document


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_job_matches_golden(case: str) -> None:
    document = render(*CASES[case])
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("CLOUDTRAIN_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(yaml.safe_dump(document, sort_keys=False))
    assert document == yaml.safe_load(golden.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_loads_with_load_job_and_passes_sdk_validation(case: str) -> None:
    from azure.ai.ml import load_job

    job = load_job(GOLDEN / f"{case}.yaml")
    assert job._validate().passed
    assert job.name.startswith(case) and job.tags["cloudtrain:submission"] == "c0ffee"
    assert (GOLDEN / job.code).is_dir()


def test_multinode_job_has_distribution_spot_and_cluster() -> None:
    document = yaml.safe_load((GOLDEN / "multinode-spot.yaml").read_text())
    assert document["distribution"] == {"type": "pytorch", "process_count_per_instance": 1}
    assert document["resources"]["instance_count"] == 2
    assert document["resources"]["instance_type"] == "Standard_NV36ads_A10_v5"
    assert document["queue_settings"] == {"job_tier": "spot"}
    assert document["compute"] == "azureml:gpu-cluster"
    assert document["limits"] == {"timeout": 7200}
    assert "--input train=${{inputs.train}}" in document["command"]
    assert "--output model=${{outputs.model}}" in document["command"]
    assert "azure_key_vault" in document["environment_variables"]["CLOUDTRAIN_SECRETS"]


def test_serverless_without_compute() -> None:
    document = yaml.safe_load((GOLDEN / "single-gpu.yaml").read_text())
    assert "compute" not in document and document["resources"]["instance_type"] == "Standard_NC4as_T4_v3"


@pytest.mark.parametrize("override, message", [
    ("inputs.train=s3://datasets/digits/train/", "inputs.train: s3://datasets/digits/train/ is a s3:// location"),
    ("inputs.train=gs://datasets/digits/train/", "inputs.train: gs://datasets/digits/train/ is a gs:// location"),
])
def test_cloud_storage_inputs_of_other_clouds_are_refused(override: str, message: str) -> None:
    plan = plan_for("azureml-multinode-spot.yaml", [override])
    with pytest.raises(UnsupportedFeatureError) as caught:
        get_provider("azureml").check(plan)
    assert caught.value.message.startswith(message)


def test_aws_secrets_are_refused() -> None:
    plan = plan_for("azureml-multinode-spot.yaml", ["secrets.WANDB_API_KEY.azure_key_vault=null",
                                                    "secrets.WANDB_API_KEY.aws_secret=arn:aws:secretsmanager:us-east-1:1:secret:x"])
    with pytest.raises(UnsupportedFeatureError, match="cannot read secrets from aws_secret"):
        get_provider("azureml").check(plan)


def test_missing_workspace_names_the_setting() -> None:
    plan = plan_for("custom-image.yaml", [])
    with pytest.raises(SpecError) as caught:
        get_provider("azureml").check(plan)
    assert caught.value.message == "azureml.subscription_id, azureml.resource_group, azureml.workspace are not set"
    assert "CLOUDTRAIN_AZUREML_SUBSCRIPTION_ID" in (caught.value.hint or "")


def test_sdk_validation_errors_name_the_field() -> None:
    from cloudtrain.providers.azureml_job import load_yaml_job

    document = yaml.safe_load((GOLDEN / "single-gpu.yaml").read_text())
    document["command"] += " --extra ${{inputs.missing}}"
    document["resources"]["instance_count"] = "two"
    with pytest.raises(SpecError) as caught:
        load_yaml_job(document, base_dir=GOLDEN)
    assert "instance_count" in caught.value.message
    del document["resources"]["instance_count"]
    with pytest.raises(SpecError) as caught:
        load_yaml_job(document, base_dir=GOLDEN)
    assert "command: Inputs to job does not contain 'missing'" in caught.value.message
