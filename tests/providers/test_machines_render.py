"""Every machine the clouds offer for training can be chosen (exactly or by accelerator) and
renders; a CPU job gets a CPU machine everywhere; multi-node estimates match the catalog rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

SETTINGS = ["sagemaker.role_arn=arn:aws:iam::123456789012:role/Training", "sagemaker.bucket=stage",
            "azureml.subscription_id=00000000-0000-0000-0000-000000000000", "azureml.resource_group=rg",
            "azureml.workspace=ws", "vertex.project=proj", "vertex.staging_bucket=gs://stage"]
IMAGE = "image=123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1"


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text("name: machines\ncode: .\nentrypoint: train.py\nframework: {name: pytorch}\nmax_runtime: 2h\n")
    return tmp_path / "job.yaml"


def plan_and_render(spec_path: Path, cloud: str, *overrides: str, region: str | None = None):  # type: ignore[no-untyped-def]
    runner = Runner()
    plan = runner.plan(load_spec(spec_path, [*SETTINGS, *overrides]), cloud, region=region)
    return plan, runner.render(plan).payload


@pytest.mark.parametrize("cloud, instance, region, extra", [
    ("sagemaker", "ml.p4d.24xlarge", None, []),
    ("sagemaker", "ml.p5.48xlarge", "us-west-2", []),
    ("sagemaker", "ml.trn1.32xlarge", None, ["framework=null", IMAGE]),
    ("sagemaker", "ml.c4.xlarge", None, []),
    ("vertex", "a2-highgpu-8g", None, []),
    ("vertex", "a2-ultragpu-8g", "europe-west4", []),
    ("vertex", "n1-standard-8+NVIDIA_TESLA_T4x1", None, []),
    ("azureml", "Standard_ND96amsr_A100_v4", None, []),
])
def test_named_machines_render(spec_path: Path, cloud: str, instance: str, region: str | None, extra: list[str]) -> None:
    plan, payload = plan_and_render(spec_path, cloud, f"resources.instance_type.{cloud}={instance}", *extra, region=region)
    assert plan.instance_type == instance and (region is None or plan.region == region)
    rendered = str(payload)
    assert instance.split("+")[0] in rendered


@pytest.mark.parametrize("cloud", ["sagemaker", "azureml", "vertex"])
def test_two_nodes_of_eight_a100_plan_on_every_cloud(spec_path: Path, cloud: str) -> None:
    plan, _ = plan_and_render(spec_path, cloud, "resources.accelerator=A100:8", "resources.nodes=2", "distribution.type=torchrun")
    assert (plan.offer.accelerator, plan.offer.accelerator_count, plan.nodes, plan.processes_per_node) == ("A100", 8, 2, 8)
    if plan.estimate.priced:  # exactly the catalog row's price, times nodes and hours
        assert plan.estimate.max_total_usd == round(plan.offer.usd_per_hour * 2 * 2, 2)


@pytest.mark.parametrize("cloud", ["sagemaker", "azureml", "vertex"])
def test_a_cpu_job_gets_a_cpu_machine(spec_path: Path, cloud: str) -> None:
    plan, _ = plan_and_render(spec_path, cloud, "resources.cpus=4", "resources.memory_gib=16", "framework.name=sklearn")
    assert plan.offer.accelerator_count == 0 and plan.offer.vcpus >= 4 and plan.offer.memory_gib >= 16
    assert plan.offer.vcpus <= 16  # the smallest adequate machine, not the biggest one that matched


@pytest.mark.parametrize("name, accelerator, count", [("A10G:4", "A10G", 4), ("L4:2", "L4", 2), ("T4", "T4", 1)])
def test_accelerators_by_name_and_count(spec_path: Path, name: str, accelerator: str, count: int) -> None:
    clouds = {"A10G:4": ["sagemaker"], "L4:2": ["vertex"], "T4": ["sagemaker", "azureml", "vertex"]}[name]
    for cloud in clouds:
        plan, _ = plan_and_render(spec_path, cloud, f"resources.accelerator={name}")
        assert (plan.offer.accelerator, plan.offer.accelerator_count) == (accelerator, count), cloud
