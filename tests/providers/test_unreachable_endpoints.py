"""An endpoint nobody listens on is a clear error (exit 3, with a hint), reported without minutes of
retries: the SDKs' own timeouts and retry budgets are set (figures: bench, not asserted here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "digits-sklearn.yaml")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("cloud, variables, settings", [
    ("sagemaker", {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                   "AWS_DEFAULT_REGION": "us-east-1"},
     ["sagemaker.role_arn=arn:aws:iam::123456789012:role/T", "sagemaker.bucket=b"]),
    ("vertex", {"CLOUDTRAIN_VERTEX_API_ENDPOINT": "http://127.0.0.1:{port}", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:{port}"},
     ["vertex.project=p", "vertex.staging_bucket=gs://b", "vertex.location=us-central1"]),
])
def test_a_closed_port_is_exit_3_with_a_hint(tmp_path: Path, cloud: str, variables: dict[str, str], settings: list[str]) -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CLOUDTRAIN_", "STORAGE_"))}
    env.update({k: v.format(port=port) for k, v in variables.items()}, CLOUDTRAIN_HOME=str(tmp_path / "home"),
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")
    argv = [sys.executable, "-m", "cloudtrain", "submit", EXAMPLE, "--cloud", cloud]
    for item in settings:
        argv += ["--set", item]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "cannot reach" in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr
