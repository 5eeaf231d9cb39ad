"""The golden harness: every cloud's rendered request for every spec file in ``specs/``, compared
with ``golden/<cloud>/<case>.json`` (``.yaml`` for Azure ML), and the golden validated with the
cloud SDK's own rules (botocore's service model for SageMaker, ``azure.ai.ml.load_job`` for Azure
ML, ``aiplatform_v1.CustomJob.from_json`` for Vertex AI).

Which spec a cloud renders: ``specs/<case>.yaml`` for every cloud, unless ``specs/<cloud>-<case>.yaml``
exists, which replaces it for that cloud (or is that cloud's alone). Time and submission token
are fixed (:data:`FIXED`). Regenerate after an intended change with
``CLOUDTRAIN_UPDATE_GOLDEN=1 pytest tests/providers/test_golden_requests.py`` and review the diff.
Paths in the Azure ML goldens are relative to the golden file (``load_job`` resolves them from
there), so they do not depend on where the repository is checked out.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtrain.catalog import load_catalog
from cloudtrain.catalog.offers import Offer
from cloudtrain.catalog.query import Catalog
from cloudtrain.plan import Plan, make_plan
from cloudtrain.providers.registry import get_provider
from cloudtrain.specfile import load_spec

HERE = Path(__file__).parent
SPECS = HERE / "specs"
GOLDEN = HERE / "golden"
FIXED = dict(created_at=datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc), token="c0ffee")
CLOUDS = ("sagemaker", "azureml", "vertex")
SDK = {"sagemaker": "botocore", "azureml": "azure.ai.ml", "vertex": "google.cloud.aiplatform_v1"}
AZUREML_WORKSPACE = ["azureml.subscription_id=00000000-0000-0000-0000-000000000000", "azureml.resource_group=rg",
                     "azureml.workspace=ws", "azureml.region=eastus"]
#: (cloud, case) -> --set overrides the case needs on that cloud
OVERRIDES = {("azureml", "custom-image"): AZUREML_WORKSPACE}
#: read at import: tests/conftest.py removes every CLOUDTRAIN_* variable before each test
UPDATE_GOLDEN = bool(os.environ.get("CLOUDTRAIN_UPDATE_GOLDEN"))


def vertex_offer(instance_type: str, accelerator: str | None, count: int, vcpus: int, memory: float, usd: float,
                 spot: float | None = None) -> Offer:
    return Offer(cloud="vertex", region="us-central1", instance_type=instance_type, accelerator=accelerator,
                 accelerator_count=count, accelerator_memory_gib=None, vcpus=vcpus, memory_gib=memory, usd_per_hour=usd,
                 spot_usd_per_hour=spot, price_as_of=date(2026, 11, 1), source="test")


#: The bundled Vertex catalog is small (n1-standard-4, a3-highgpu-8g): offers of the two instance-type
#: conventions are added, attached GPUs (``n1-standard-8+NVIDIA_TESLA_T4x1``) and bundled (``a2-highgpu-1g``).
VERTEX_EXTRA = [
    vertex_offer("n1-standard-8+NVIDIA_TESLA_T4x1", "T4", 1, 8, 30.0, 0.73, 0.22),
    vertex_offer("a2-highgpu-1g", "A100", 1, 12, 85.0, 4.22, 1.27),
]


def catalog_for(cloud: str, *extra: Offer) -> Catalog:
    offers = [*load_catalog().offers, *(VERTEX_EXTRA if cloud == "vertex" else []), *extra]
    return Catalog(offers=offers)


def spec_files(cloud: str) -> dict[str, Path]:
    """case -> the spec file ``cloud`` renders for it."""
    files: dict[str, Path] = {}
    for path in sorted(SPECS.glob("*.yaml")):
        prefix, _, rest = path.stem.partition("-")
        if prefix in CLOUDS:
            if prefix == cloud:
                files[rest] = path
        else:
            files.setdefault(path.stem, path)
    return files


CASES = [(cloud, case) for cloud in CLOUDS for case in spec_files(cloud)]


def spec_data(cloud: str, case: str) -> dict[str, Any]:
    """The spec file's content, for tests that change a field before planning."""
    return yaml.safe_load(spec_files(cloud)[case].read_text())


def plan_for(cloud: str, case: str, overrides: tuple[str, ...] | list[str] = (), catalog: Catalog | None = None) -> Plan:
    """The plan of a case at the fixed time and token, checked by the provider (refusals raise)."""
    spec = load_spec(spec_files(cloud)[case], [*OVERRIDES.get((cloud, case), []), *overrides], check_files=False).spec
    plan = make_plan(spec, cloud, catalog=catalog or catalog_for(cloud), **FIXED)
    get_provider(cloud).check(plan)
    return plan


def azureml_relative_paths(document: dict[str, Any]) -> dict[str, Any]:
    """Absolute local paths (code, local inputs) made relative to the golden directory."""
    here = GOLDEN / "azureml"

    def rel(path: str) -> str:
        return os.path.relpath(path, here) if os.path.isabs(path) else path

    document = dict(document, code=rel(document["code"]))
    for item in (document.get("inputs") or {}).values():
        item["path"] = rel(item["path"])
    return document


def render(cloud: str, case: str, overrides: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    payload = get_provider(cloud).render(plan_for(cloud, case, overrides)).payload
    return azureml_relative_paths(payload) if cloud == "azureml" else payload


def golden_path(cloud: str, case: str) -> Path:
    return GOLDEN / cloud / f"{case}.{'yaml' if cloud == 'azureml' else 'json'}"


def read_golden(cloud: str, case: str) -> dict[str, Any]:
    text = golden_path(cloud, case).read_text()
    return yaml.safe_load(text) if cloud == "azureml" else json.loads(text)


@pytest.mark.parametrize("cloud, case", CASES)
def test_rendered_request_matches_golden(cloud: str, case: str) -> None:
    pytest.importorskip(SDK[cloud])
    payload = render(cloud, case)
    golden = golden_path(cloud, case)
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(yaml.safe_dump(payload, sort_keys=False) if cloud == "azureml"
                          else json.dumps(payload, indent=2, sort_keys=True) + "\n")
    assert payload == read_golden(cloud, case)


def test_every_golden_file_has_a_case() -> None:
    """A golden left behind by a renamed or removed spec would be checked by nothing."""
    on_disk = {(p.parent.name, p.stem) for p in GOLDEN.glob("*/*.*")}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("cloud, case", CASES)
def test_golden_passes_the_sdks_own_validation(cloud: str, case: str) -> None:
    pytest.importorskip(SDK[cloud])
    golden = read_golden(cloud, case)
    if cloud == "sagemaker":
        from cloudtrain.providers.sagemaker_request import validate_request

        validate_request(golden)  # botocore's service model, strictly
        assert golden["TrainingJobName"].startswith(case)
    elif cloud == "azureml":
        from azure.ai.ml import load_job

        job = load_job(golden_path(cloud, case))
        assert job._validate().passed
        assert job.name.startswith(case) and job.tags["cloudtrain:submission"] == "c0ffee"
        assert (golden_path(cloud, case).parent / job.code).is_dir()
    else:
        from google.cloud import aiplatform_v1

        job = aiplatform_v1.CustomJob.from_json(json.dumps(golden), ignore_unknown_fields=False)
        again = json.loads(aiplatform_v1.CustomJob.to_json(job, use_integers_for_enums=False,
                                                           always_print_fields_with_no_presence=False))
        assert again == golden  # exactly what CustomJob.to_json gives
        assert job.display_name.startswith(spec_data(cloud, case)["name"])
        assert job.labels["cloudtrain-submission"] == "c0ffee"


def test_sagemaker_strict_validation_names_fields() -> None:
    from cloudtrain.errors import SpecError
    from cloudtrain.providers.sagemaker_request import validate_request

    request = render("sagemaker", "single-gpu")
    request["TrainingJobName"] = "bad name!"
    request["ResourceConfig"]["InstanceType"] = "ml.nope.99xlarge"
    request["Environment"]["LONG"] = "x" * 600
    request["Bogus"] = 1
    with pytest.raises(SpecError) as caught:
        validate_request(request)
    message = caught.value.message
    assert "TrainingJobName: 'bad name!' does not match the pattern" in message
    assert "ResourceConfig.InstanceType: 'ml.nope.99xlarge' is not one of" in message
    assert "Environment['LONG']: 600 characters, at most 512 allowed" in message
    assert "Bogus" in message  # botocore's own unknown-key check
