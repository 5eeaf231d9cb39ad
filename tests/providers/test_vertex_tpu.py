"""TPUs on Vertex AI: single-host TPU VMs render as their machine type with the slice's topology
(parsed by the SDK's CustomJob); what Vertex cannot run is refused at plan time, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtrain.api import Job
from cloudtrain.errors import CatalogError, SpecError
from cloudtrain.providers.vertex_job import validate_request

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-cnn.yaml"
VERTEX = {"vertex.project": "p", "vertex.staging_bucket": "gs://b", "vertex.location": "us-central1",
          "resources.memory_gib": 16, "image.vertex": "us-docker.pkg.dev/p/r/torch-xla:1"}


@pytest.mark.parametrize("accelerator, machine, topology", [
    ("TPU-v5e:1", "ct5lp-hightpu-1t", "1x1"), ("TPU-v5e:4", "ct5lp-hightpu-4t", "2x2"), ("TPU-v5e:8", "ct5lp-hightpu-8t", "2x4"),
    ("TPU-v6e:8", "ct6e-standard-8t", "2x4"), ("TPU-v5p:4", "ct5p-hightpu-4t", "2x2x1"),
])
def test_a_tpu_vm_renders_with_its_topology(accelerator: str, machine: str, topology: str) -> None:
    request = Job.from_file(EXAMPLE, {**VERTEX, "resources.accelerator": accelerator}).dry_run("vertex").payload
    validate_request(request)  # the SDK's CustomJob parser, as at submit
    assert request["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == {"machineType": machine, "tpuTopology": topology}


def test_a_framework_image_is_refused_on_a_tpu() -> None:
    overrides = {k: v for k, v in VERTEX.items() if k != "image.vertex"}
    with pytest.raises(SpecError, match="framework: Vertex AI has no prebuilt training container for TPU-v5e"):
        Job.from_file(EXAMPLE, {**overrides, "resources.accelerator": "TPU-v5e:8"}).dry_run("vertex")


def test_a_multi_host_slice_is_refused() -> None:
    with pytest.raises(SpecError, match="resources.nodes: a TPU slice of several hosts"):
        Job.from_file(EXAMPLE, {**VERTEX, "resources.accelerator": "TPU-v5e:8", "resources.nodes": 2}).dry_run("vertex")


@pytest.mark.parametrize("cloud", ["sagemaker", "azureml"])
def test_other_clouds_refuse_tpus_by_name(cloud: str) -> None:
    with pytest.raises(CatalogError, match=f"{cloud} has no TPU-v5e offers"):
        Job.from_file(EXAMPLE, {"resources.accelerator": "TPU-v5e:8"}).plan(cloud, dry_run=True)
