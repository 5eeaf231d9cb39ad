"""The example job on the local SageMaker emulator, through the real boto3 client.

Starts the emulator, then runs, with the variables it prints:

    cloudtrain submit examples/digits-sklearn.yaml --cloud sagemaker --dry-run   # the exact request
    cloudtrain submit examples/digits-sklearn.yaml --cloud sagemaker --wait      # stage, create, follow

``make demo`` runs it after the local run. By hand, the same in two shells:
``cloudtrain emulator start`` in one, ``export`` what it prints in the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cloudtrain.emulators.sagemaker import SageMakerEmulator

EXAMPLE = Path(__file__).resolve().parent / "digits-sklearn.yaml"
CLOUDTRAIN = Path(sys.executable).with_name("cloudtrain")


def main() -> int:
    with SageMakerEmulator() as emulator:
        env = {**os.environ, **emulator.environment()}
        print(f"SageMaker emulator on {emulator.endpoint_url}", flush=True)
        dry = subprocess.run([str(CLOUDTRAIN), "submit", str(EXAMPLE), "--cloud", "sagemaker", "--dry-run"], env=env,
                             capture_output=True, text=True)
        print("\n".join(dry.stdout.splitlines()[:12]) + "\n  ...", flush=True)
        return subprocess.run([str(CLOUDTRAIN), "submit", str(EXAMPLE), "--cloud", "sagemaker", "--wait"], env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
