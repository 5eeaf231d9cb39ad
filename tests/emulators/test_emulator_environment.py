"""What `emulator start` exports must not break other programs in the user's shell."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trustme")


def test_the_azure_ca_bundle_still_trusts_the_system_roots(tmp_path: Path) -> None:
    import certifi

    from cloudtrain.emulators.azureml import AzureMLEmulator

    with AzureMLEmulator(root=tmp_path, server=True) as emulator:
        bundle = Path(emulator.environment()["REQUESTS_CA_BUNDLE"]).read_text()
    roots = Path(certifi.where()).read_text().count("BEGIN CERTIFICATE")
    assert bundle.count("BEGIN CERTIFICATE") == roots + 1  # every public root, and the emulator's CA


def _bundle(tmp_path: Path, name: str, *pems: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(b"\n".join(pems) + b"\n")
    return str(path)


def test_merged_environment_has_one_proxy_joined_lists_and_each_certificate_once(tmp_path: Path) -> None:
    import trustme

    from cloudtrain.emulators.group import EnvironmentClash, merge_environments

    root, first, second = (trustme.CA().cert_pem.bytes() for _ in range(3))
    environments = {
        "A": {"HTTPS_PROXY": "http://127.0.0.1:1", "NO_PROXY": "corp.example,127.0.0.1", "REQUESTS_CA_BUNDLE": _bundle(tmp_path, "a.pem", root, first),
              "SHARED": "same", "ONLY_A": "a"},
        "B": {"HTTPS_PROXY": "http://127.0.0.1:2", "grpc_proxy": "http://127.0.0.1:2", "NO_PROXY": "127.0.0.1,localhost",
              "REQUESTS_CA_BUNDLE": _bundle(tmp_path, "b.pem", root, second), "SHARED": "same"},
    }
    merged = merge_environments(environments, "http://127.0.0.1:9", tmp_path)
    assert merged["HTTPS_PROXY"] == merged["grpc_proxy"] == "http://127.0.0.1:9"
    assert merged["NO_PROXY"] == "corp.example,127.0.0.1,localhost"
    assert merged["SHARED"] == "same" and merged["ONLY_A"] == "a"
    bundle = Path(merged["REQUESTS_CA_BUNDLE"]).read_bytes()
    assert Path(merged["REQUESTS_CA_BUNDLE"]).parent == tmp_path
    assert [bundle.count(pem.strip()) for pem in (root, first, second)] == [1, 1, 1]

    environments["B"]["ONLY_A"] = "b"
    with pytest.raises(EnvironmentClash, match=r"ONLY_A \(A: a, B: b\)"):
        merge_environments(environments, "http://127.0.0.1:9", tmp_path)


# Run with only what `emulator start --cloud sagemaker --cloud vertex --cloud azureml` exports: each cloud's
# own hostnames (STS at the fixed address the SageMaker SDK uses, Vertex's REST host, the Azure storage
# account's blob host) reach their emulator through the one proxy, with certificates the bundles verify.
REACH_EVERY_CLOUD = """
import boto3, requests
print("aws", boto3.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com").get_caller_identity()["Account"])
jobs = requests.get("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/customJobs", timeout=30)
print("vertex", jobs.status_code, sorted(jobs.json()))
container = requests.get("https://cloudtrainemulator.blob.core.windows.net/azureml-blobstore-emulator?restype=container", timeout=30)
print("azure", container.status_code, container.headers.get("ETag"))
"""


def test_three_emulators_served_together_answer_each_clouds_hostnames_in_one_shell(tmp_path: Path) -> None:
    import io
    import os
    import shlex
    import subprocess
    import sys
    import threading

    import certifi

    pytest.importorskip("moto")
    from cloudtrain.emulators.azureml import AzureMLEmulator
    from cloudtrain.emulators.common import serve_forever, wait_until
    from cloudtrain.emulators.group import EmulatorGroup
    from cloudtrain.emulators.sagemaker import SageMakerEmulator
    from cloudtrain.emulators.vertex import VertexEmulator

    members = [SageMakerEmulator(root=tmp_path / "sm", proxy_passthrough=False, stop_grace_seconds=2),
               VertexEmulator(root=tmp_path / "vx", proxy_passthrough=False, grace_seconds=2),
               AzureMLEmulator(tmp_path / "az", server=True, proxy_passthrough=False, grace_seconds=2)]
    group = EmulatorGroup(members, passthrough=False)
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(target=serve_forever, args=(group,), kwargs=dict(out=out, stop=stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: out.getvalue().endswith("\n\n"), 120, what="the exports")
        exported = dict(shlex.split(line[len("export "):])[0].partition("=")[::2] for line in out.getvalue().splitlines() if line)
        proxies = {m.connect_proxy().url for m in members}
        assert exported["HTTPS_PROXY"] == exported["https_proxy"] == exported["grpc_proxy"] == group.proxy.url
        assert group.proxy.url not in proxies  # one proxy for all, none of the members' own
        bundle = Path(exported["REQUESTS_CA_BUNDLE"]).read_text()
        assert bundle.count("BEGIN CERTIFICATE") == Path(certifi.where()).read_text().count("BEGIN CERTIFICATE") + 2  # Vertex's and Azure's CAs
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", **exported}
        done = subprocess.run([sys.executable, "-c", REACH_EVERY_CLOUD], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.splitlines()
        assert lines[0] == f"aws {members[0].account_id}"
        assert lines[1].startswith("vertex 200")
        assert lines[2] == 'azure 200 "0x1"'  # the workspace's default container's properties
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive() and group.proxy is None


def test_several_clouds_with_one_port_is_a_usage_error() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cloudtrain", "emulator", "start", "--cloud", "sagemaker", "--cloud", "vertex",
                           "--port", "8443"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--port" in done.stderr and "Traceback" not in done.stderr
