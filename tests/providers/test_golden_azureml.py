"""Azure ML: what the golden job YAMLs say, plan-time refusals and field-named validation errors.
The goldens themselves (rendered from ``specs/``, loaded back with ``azure.ai.ml.load_job`` and
validated with the SDK's own rules) are checked by the harness in ``test_golden_requests.py``.
"""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("azure.ai.ml")

from test_golden_requests import FIXED, catalog_for, spec_files  # noqa: E402 - the golden harness's cases
from test_golden_requests import GOLDEN as ALL_GOLDEN  # noqa: E402

from cloudtrain.errors import SpecError, UnsupportedFeatureError  # noqa: E402
from cloudtrain.plan import make_plan  # noqa: E402
from cloudtrain.providers.registry import get_provider  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402

GOLDEN = ALL_GOLDEN / "azureml"


def plan_for(case: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    """The case's plan (the harness's spec file), not yet checked by the provider: the tests check refusals."""
    spec = load_spec(spec_files("azureml")[case], overrides, check_files=False).spec
    return make_plan(spec, "azureml", catalog=catalog_for("azureml"), **FIXED)


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
    plan = plan_for("multinode-spot", [override])
    with pytest.raises(UnsupportedFeatureError) as caught:
        get_provider("azureml").check(plan)
    assert caught.value.message.startswith(message)


def test_aws_secrets_are_refused() -> None:
    plan = plan_for("multinode-spot", ["secrets.WANDB_API_KEY.azure_key_vault=null",
                                                    "secrets.WANDB_API_KEY.aws_secret=arn:aws:secretsmanager:us-east-1:1:secret:x"])
    with pytest.raises(UnsupportedFeatureError, match="cannot read secrets from aws_secret"):
        get_provider("azureml").check(plan)


def test_missing_workspace_names_the_setting() -> None:
    plan = plan_for("custom-image", [])
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
