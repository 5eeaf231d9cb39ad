"""Rendered requests compared with golden files, and validated with the provider SDK's own rules.

Regenerate after an intended change with ``CLOUDTRAIN_UPDATE_GOLDEN=1 pytest tests/providers/test_golden_requests.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cloudtrain.catalog import load_catalog
from cloudtrain.plan import make_plan
from cloudtrain.providers.registry import get_provider
from cloudtrain.specfile import load_spec

HERE = Path(__file__).parent
CASES = ["single-gpu", "multinode-spot", "custom-image"]
CLOUDS = {"sagemaker": CASES}
FIXED = dict(created_at=datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc), token="c0ffee")


def render(cloud: str, case: str) -> dict:
    spec = load_spec(HERE / "specs" / f"{case}.yaml").spec
    plan = make_plan(spec, cloud, catalog=load_catalog(), **FIXED)
    provider = get_provider(cloud)
    provider.check(plan)
    return provider.render(plan).payload


@pytest.mark.parametrize("cloud, case", [(c, case) for c, cases in CLOUDS.items() for case in cases])
def test_rendered_request_matches_golden(cloud: str, case: str) -> None:
    payload = render(cloud, case)
    golden = HERE / "golden" / cloud / f"{case}.json"
    if os.environ.get("CLOUDTRAIN_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    assert payload == json.loads(golden.read_text())


@pytest.mark.parametrize("case", CASES)
def test_sagemaker_golden_passes_strict_service_model_validation(case: str) -> None:
    from cloudtrain.providers.sagemaker_request import validate_request

    validate_request(json.loads((HERE / "golden" / "sagemaker" / f"{case}.json").read_text()))


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
