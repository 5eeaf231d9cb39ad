"""Paths of the templates under infra/ and how to run the project's CLI (imported by the tests here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CFN_TEMPLATE = INFRA / "aws" / "cloudtrain-sagemaker.yaml"
ARM_TEMPLATE = INFRA / "azure" / "cloudtrain-azureml.json"
TERRAFORM = INFRA / "gcp"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudtrain", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
