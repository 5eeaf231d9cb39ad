"""Vertex AI CustomJob requests: compared with golden files, parsed with the SDK's own proto JSON
parser, and the plan-time refusals.

The bundled Vertex catalog is small (n1-standard-4, a3-highgpu-8g), so these tests plan against it
plus a few offers of the two instance-type conventions: attached GPUs (``n1-standard-8+NVIDIA_TESLA_T4x1``)
and bundled GPUs (``a2-highgpu-1g``). Regenerate after an intended change with
``CLOUDTRAIN_UPDATE_GOLDEN=1 pytest tests/providers/test_golden_vertex.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtrain.catalog import load_catalog
from cloudtrain.catalog.offers import Offer
from cloudtrain.catalog.query import Catalog
from cloudtrain.errors import SpecError, UnsupportedFeatureError
from cloudtrain.plan import make_plan
from cloudtrain.providers.vertex import VertexProvider
from cloudtrain.specfile import build_spec

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "vertex"
FIXED = dict(created_at=datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc), token="c0ffee")
VERTEX = {"project": "my-project", "location": "us-central1", "staging_bucket": "gs://ct-staging"}


def offer(instance_type: str, accelerator: str | None, count: int, vcpus: int, memory: float, usd: float,
          spot: float | None = None) -> Offer:
    return Offer(cloud="vertex", region="us-central1", instance_type=instance_type, accelerator=accelerator,
                 accelerator_count=count, accelerator_memory_gib=None, vcpus=vcpus, memory_gib=memory, usd_per_hour=usd,
                 spot_usd_per_hour=spot, price_as_of=date(2026, 11, 1), source="test")


EXTRA = [
    offer("n1-standard-8+NVIDIA_TESLA_T4x1", "T4", 1, 8, 30.0, 0.73, 0.22),
    offer("a2-highgpu-1g", "A100", 1, 12, 85.0, 4.22, 1.27),
]


def catalog(*extra: Offer) -> Catalog:
    return Catalog(offers=[*load_catalog().offers, *EXTRA, *extra])


def shared(name: str) -> dict[str, Any]:
    return yaml.safe_load((HERE / "specs" / f"{name}.yaml").read_text())


def case_data(case: str) -> dict[str, Any]:
    """The shared golden specs, made into what Vertex can run."""
    if case == "single-gpu":
        data = shared("single-gpu")
        data["framework"]["version"] = "2.4"
        data["tags"] = {"team": "vision", "Cost Center": "ML/Research 42"}
    elif case == "multinode-spot":
        data = shared("multinode-spot")
        data["framework"]["version"] = "2.4"
        data["resources"] = {"accelerator": "A100:1", "nodes": 2, "disk_gib": 100}
        data["inputs"] = {"train": "gs://datasets/digits/train/", "extra": "./train.py"}
        data["secrets"] = {"WANDB_API_KEY": {"gcp_secret": "projects/my-project/secrets/wandb/versions/latest"}}
        data["budget"] = {"max_usd": 100}
    elif case == "custom-image":
        data = shared("custom-image")
        data["image"] = "us-central1-docker.pkg.dev/my-project/training/my-training:1.4"
        data["resources"] = {"cpus": 4, "memory_gib": 15}
        data["vertex"] = {**VERTEX, "staging_bucket": "gs://ct-bucket/teams/ml",
                          "service_account": "trainer@my-project.iam.gserviceaccount.com"}
        return data
    else:  # the example job, on the CPU machine
        data = yaml.safe_load((HERE.parents[1] / "examples" / "digits-sklearn.yaml").read_text())
        data["code"] = "."
        data["resources"]["memory_gib"] = 8
    data["vertex"] = dict(VERTEX)
    return data


CASES = ["single-gpu", "multinode-spot", "custom-image", "digits-sklearn"]


def plan_for(data: dict[str, Any], cat: Catalog | None = None, overrides: tuple[str, ...] = ()) -> Any:
    loaded = build_spec(data, source="test.yaml", base_dir=HERE / "specs", overrides=overrides, environ={})
    plan = make_plan(loaded.spec, "vertex", catalog=cat or catalog(), **FIXED)
    VertexProvider().check(plan)
    return plan


def render(case: str) -> dict[str, Any]:
    return VertexProvider().render(plan_for(case_data(case))).payload


@pytest.mark.parametrize("case", CASES)
def test_rendered_custom_job_matches_golden(case: str) -> None:
    payload = render(case)
    golden = GOLDEN / f"{case}.json"
    if os.environ.get("CLOUDTRAIN_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    assert payload == json.loads(golden.read_text())


@pytest.mark.parametrize("case", CASES)
def test_golden_is_the_sdks_own_rest_json(case: str) -> None:
    from google.cloud import aiplatform_v1

    golden = json.loads((GOLDEN / f"{case}.json").read_text())
    job = aiplatform_v1.CustomJob.from_json(json.dumps(golden), ignore_unknown_fields=False)
    again = json.loads(aiplatform_v1.CustomJob.to_json(job, use_integers_for_enums=False, always_print_fields_with_no_presence=False))
    assert again == golden  # exactly what CustomJob.to_json gives
    assert job.display_name.startswith(case_data(case)["name"])
    assert job.labels["cloudtrain-submission"] == "c0ffee"


def test_attached_gpu_convention_and_labels() -> None:
    job = render("single-gpu")
    pool = job["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"] == {"machineType": "n1-standard-8", "acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 1}
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
