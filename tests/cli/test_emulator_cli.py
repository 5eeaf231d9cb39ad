"""`cloudtrain emulator start`: export lines, a blank line, then serving until Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest


@pytest.mark.parametrize("cloud, expected", [("sagemaker", "AWS_ENDPOINT_URL"), ("azureml", "AZUREML_DEV_URL_MFE"),
                                             ("vertex", "CLOUDTRAIN_VERTEX_API_ENDPOINT")])
def test_emulator_start_prints_exports_then_serves(cloud: str, expected: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    process = subprocess.Popen([sys.executable, "-m", "cloudtrain", "emulator", "start", "--cloud", cloud, "--root", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        exports = {}
        for line in process.stdout:  # type: ignore[union-attr]
            if not line.strip():
                break
            assert line.startswith("export "), line
            key, _, value = line[len("export "):].strip().partition("=")
            exports[key] = value
        assert expected in exports and "127.0.0.1" in "".join(exports.values())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_bad_fault_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "cloudtrain", "emulator", "start", "--fault", "nonsense"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
