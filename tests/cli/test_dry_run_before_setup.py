"""`submit --dry-run` before any cloud set-up: placeholders, and every missing setting named at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "digits-sklearn.yaml")


@pytest.mark.parametrize("cloud, missing", [
    ("sagemaker", ["sagemaker.role_arn", "sagemaker.bucket"]),
    ("azureml", ["azureml.subscription_id", "azureml.resource_group", "azureml.workspace"]),
    ("vertex", ["vertex.project", "vertex.staging_bucket"]),
])
def test_dry_run_renders_with_placeholders_and_lists_what_a_submit_needs(cloud: str, missing: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTRAIN_") or k == "CLOUDTRAIN_HOME"}
    result = subprocess.run([sys.executable, "-m", "cloudtrain", "submit", EXAMPLE, "--cloud", cloud, "--dry-run", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["missing_settings"] == missing
    if cloud != "azureml":  # the Azure ML job names no workspace: the client it is sent with does
        assert "SET-" in json.dumps(data["request"]) or "set-" in json.dumps(data["request"])
    text = subprocess.run([sys.executable, "-m", "cloudtrain", "submit", EXAMPLE, "--cloud", cloud, "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0 and all(name in text.stderr for name in missing)
    real = subprocess.run([sys.executable, "-m", "cloudtrain", "submit", EXAMPLE, "--cloud", cloud],
                          capture_output=True, text=True, env=env, timeout=120)
    assert real.returncode == 2 and all(name in real.stderr for name in missing) and "Traceback" not in real.stderr
