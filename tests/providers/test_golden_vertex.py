"""Vertex AI CustomJob requests: what the goldens say, and the plan-time refusals. The goldens
themselves (rendered from ``specs/``, parsed with the SDK's own proto JSON parser) are checked by
the harness in ``test_golden_requests.py``; the Vertex catalog there has extra offers of the two
instance-type conventions (attached and bundled GPUs).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from test_golden_requests import FIXED, SPECS, spec_data  # the golden harness's cases
from test_golden_requests import catalog_for, vertex_offer as offer

from cloudtrain.catalog.offers import Offer
from cloudtrain.catalog.query import Catalog
from cloudtrain.errors import SpecError, UnsupportedFeatureError
from cloudtrain.plan import make_plan
from cloudtrain.providers.vertex import VertexProvider
from cloudtrain.specfile import build_spec


def catalog(*extra: Offer) -> Catalog:
    return catalog_for("vertex", *extra)


def case_data(case: str) -> dict[str, Any]:
    """The Vertex spec file of a case (``specs/vertex-<case>.yaml``), as data to change."""
    return spec_data("vertex", case)


def plan_for(data: dict[str, Any], cat: Catalog | None = None, overrides: tuple[str, ...] = ()) -> Any:
    loaded = build_spec(data, source="test.yaml", base_dir=SPECS, overrides=overrides, environ={})
    plan = make_plan(loaded.spec, "vertex", catalog=cat or catalog(), **FIXED)
    VertexProvider().check(plan)
    return plan


def render(case: str) -> dict[str, Any]:
    return VertexProvider().render(plan_for(case_data(case))).payload


def test_attached_gpu_convention_and_labels() -> None:
    job = render("single-gpu")
    pool = job["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"] == {"machineType": "n1-standard-4", "acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 1}  # the smallest machine a T4 attaches to
    assert pool["containerSpec"]["imageUri"] == "us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest"
    assert job["labels"] == {"team": "vision", "cost-center": "ml-research-42", "cloudtrain-job": "single-gpu",
                             "cloudtrain-submission": "c0ffee"}
    assert job["jobSpec"]["scheduling"] == {"timeout": "5400s"}


def test_multinode_spot_pools_scheduling_and_environment() -> None:
    job = render("multinode-spot")
    primary, workers = job["jobSpec"]["workerPoolSpecs"]
    assert (primary["replicaCount"], workers["replicaCount"]) == ("1", "1")
    assert primary["machineSpec"] == {"machineType": "a2-highgpu-1g", "acceleratorType": "NVIDIA_TESLA_A100", "acceleratorCount": 1}
    assert job["jobSpec"]["scheduling"] == {"timeout": "7200s", "strategy": "SPOT", "maxWaitDuration": "14400s",
                                            "restartJobOnWorkerRestart": True}
    env = {e["name"]: e["value"] for e in primary["containerSpec"]["env"]}
    base = "gs://ct-staging/cloudtrain/multinode-spot-20261125-120000-c0ff"
    assert json.loads(env["CLOUDTRAIN_INPUTS"]) == {"train": "gs://datasets/digits/train/", "extra": f"{base}/staging/inputs/extra/"}
    assert json.loads(env["CLOUDTRAIN_SECRETS"]) == {"WANDB_API_KEY": {"gcp_secret": "projects/my-project/secrets/wandb/versions/latest"}}
    assert env["CLOUDTRAIN_CODE_URI"] == f"{base}/staging/code.tar.gz"
    assert "torchrun --nnodes=2 --nproc_per_node=1" in primary["containerSpec"]["command"][2]
    assert job["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": f"{base}/"}


def test_custom_image_prefix_and_service_account() -> None:
    job = render("custom-image")
    assert job["jobSpec"]["serviceAccount"] == "trainer@my-project.iam.gserviceaccount.com"
    assert job["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://ct-bucket/teams/ml/custom-image-")
    assert job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"].endswith("my-training:1.4")


def test_unknown_accelerator_is_refused_naming_the_field() -> None:
    bad = offer("n1-standard-8+NVIDIA_TESLA_X9x1", "T4", 1, 64, 512.0, 0.1)
    data = case_data("single-gpu")
    data["resources"] = {"instance_type": {"vertex": "n1-standard-8+NVIDIA_TESLA_X9x1"}}
    with pytest.raises(SpecError) as caught:
        VertexProvider().render(plan_for(data, catalog(bad)))
    assert caught.value.message.startswith("resources.instance_type.vertex: 'NVIDIA_TESLA_X9'")


def test_unknown_machine_type_is_refused() -> None:
    bad = offer("zz-superfast-1", None, 0, 64, 512.0, 0.1)
    data = case_data("digits-sklearn")
    data["resources"] = {"instance_type": {"vertex": "zz-superfast-1"}}
    with pytest.raises(SpecError) as caught:
        VertexProvider().render(plan_for(data, catalog(bad)))
    assert "'zz-superfast' " not in caught.value.message and "zz-superfast-1" in caught.value.message


def test_unknown_framework_version_is_refused() -> None:
    data = case_data("single-gpu")
    data["framework"]["version"] = "0.4"
    with pytest.raises(SpecError) as caught:
        VertexProvider().render(plan_for(data))
    assert caught.value.message.startswith("framework.version")


@pytest.mark.parametrize("missing", ["project", "staging_bucket"])
def test_missing_settings_name_what_to_configure(missing: str) -> None:
    data = case_data("digits-sklearn")
    del data["vertex"][missing]
    with pytest.raises(SpecError) as caught:
        plan_for(data)
    assert caught.value.message == f"vertex.{missing} is not set"
    assert f"CLOUDTRAIN_VERTEX_{missing.upper()}" in (caught.value.hint or "")


@pytest.mark.parametrize("override, message", [
    ("inputs.train=s3://bucket/train", "inputs.train: s3://bucket/train is a s3:// location"),
    ("inputs.train=https://example.com/train.csv", "inputs.train: https://example.com/train.csv is a https:// location"),
    ("secrets.TOKEN.aws_secret=arn:aws:secretsmanager:us-east-1:1:secret:x", "secrets.TOKEN: the vertex backend cannot read secrets from aws_secret"),
    ("secrets.TOKEN.azure_key_vault=https://v.vault.azure.net/secrets/x", "secrets.TOKEN: the vertex backend cannot read secrets from azure_key_vault"),
])
def test_what_vertex_cannot_do_is_refused_at_plan_time(override: str, message: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        plan_for(case_data("digits-sklearn"), overrides=(override,))
    assert caught.value.message.startswith(message)


def test_validation_names_bad_fields() -> None:
    from cloudtrain.providers.vertex_job import validate_request

    job = render("digits-sklearn")
    job["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] = "NVIDIA_NOPE"
    with pytest.raises(SpecError) as caught:
        validate_request(job)
    assert "NVIDIA_NOPE" in caught.value.message
    job = render("digits-sklearn")
    job["labels"]["Bad Key"] = "x"
    job["bogus"] = 1
    with pytest.raises(SpecError) as caught:
        validate_request(job)
    assert "bogus" in caught.value.message


def test_render_is_pure_and_deterministic() -> None:
    plan = plan_for(case_data("single-gpu"))
    assert VertexProvider().render(plan).payload == VertexProvider().render(replace(plan)).payload
