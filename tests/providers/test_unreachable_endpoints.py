"""An endpoint nobody listens on is a clear error (exit 3, with a hint), reported without minutes of
retries: the SDKs' own timeouts and retry budgets are set (figures: bench, not asserted here)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
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
    listed = json.loads(subprocess.run([sys.executable, "-m", "cloudtrain", "list", "--json"], capture_output=True, text=True,
                                       env=env, timeout=60).stdout)
    logs = subprocess.run([sys.executable, "-m", "cloudtrain", "logs", listed[0]["id"]], capture_output=True, text=True, env=env,
                          timeout=60)  # from the store: the cloud never had the job
    assert logs.returncode == 2 and f"before {cloud} had it, so it has no logs: " in logs.stderr and "cannot reach" in logs.stderr, logs.stderr


class _Tokens(http.server.BaseHTTPRequestHandler):
    """A managed-identity token endpoint (App Service protocol): the credential works, the workspace
    endpoint does not answer."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"access_token": "token", "expires_on": str(int(time.time()) + 3600), "token_type": "Bearer",
                           "resource": "https://management.azure.com"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_unreachable_azure_ml_workspace_is_exit_3_with_a_hint(tmp_path: Path) -> None:
    tokens = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tokens)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    try:
        port = closed_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE", "CLOUDTRAIN_", "IDENTITY_", "MSI_"))}
        env.update(AZUREML_DEV_URL_MFE=f"https://127.0.0.1:{port}/", IDENTITY_ENDPOINT=f"http://127.0.0.1:{tokens.server_port}/msi/token",
                   IDENTITY_HEADER="header", CLOUDTRAIN_HOME=str(tmp_path / "home"), AZURE_CORE_COLLECT_TELEMETRY="false")
        argv = [sys.executable, "-m", "cloudtrain", "submit", EXAMPLE, "--cloud", "azureml",
                "--set", "azureml.subscription_id=00000000-0000-0000-0000-000000000000", "--set", "azureml.resource_group=rg",
                "--set", "azureml.workspace=ws"]
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        tokens.shutdown()
        tokens.server_close()
    assert result.returncode == 3, result.stderr
    assert "cannot reach" in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 60, f"{elapsed:.0f} s: the SDK's retries are not bounded"  # generous: 2 cores under load; the bench prints the figure
