"""SageMaker errors a user meets before any job exists: missing settings, credentials, endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "digits-sklearn.yaml")
SETTINGS = ["--set", "sagemaker.role_arn=arn:aws:iam::123456789012:role/T", "--set", "sagemaker.bucket=b",
            "--set", "sagemaker.region=us-east-1"]


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true",
                AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="1")
    base.update(env)
    return subprocess.run([sys.executable, "-m", "cloudtrain", *args], capture_output=True, text=True, env=base, timeout=120)


def test_missing_settings_exit_2_with_hint() -> None:
    result = run(["submit", EXAMPLE, "--cloud", "sagemaker"])
    assert result.returncode == 2 and "sagemaker.role_arn, sagemaker.bucket are not set" in result.stderr  # both at once
    assert "CLOUDTRAIN_SAGEMAKER_ROLE_ARN" in result.stderr and "CLOUDTRAIN_SAGEMAKER_BUCKET" in result.stderr and "Traceback" not in result.stderr


def test_missing_credentials_exit_3_without_traceback() -> None:
    result = run(["submit", EXAMPLE, "--cloud", "sagemaker", *SETTINGS])
    assert result.returncode == 3, result.stderr
    assert "no AWS credentials were found" in result.stderr and "aws configure" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_endpoint_exit_3() -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(["submit", EXAMPLE, "--cloud", "sagemaker", *SETTINGS], AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
                 AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    assert result.returncode == 3, result.stderr
    assert "cannot reach AWS while trying to upload the code bundle" in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_needs_no_credentials_and_touches_nothing(tmp_path: Path) -> None:
    import json

    result = run(["submit", EXAMPLE, "--cloud", "sagemaker", "--dry-run", "--json", *SETTINGS], CLOUDTRAIN_HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cloud"] == "sagemaker" and data["request"]["ResourceConfig"]["InstanceType"].startswith("ml.")
    assert data["estimate"]["max_total_usd"] > 0
    assert not (tmp_path / "jobs.db").exists()
