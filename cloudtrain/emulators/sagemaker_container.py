"""A job whose request names its own container command (``AlgorithmSpecification.ContainerEntrypoint``).

With ``ContainerEntrypoint`` (and ``ContainerArguments``) SageMaker runs that command in the image
instead of the image's entrypoint, so no training toolkit runs: the command finds its job where the
platform puts it, at ``/opt/ml`` (config files, channels, model and output directories), and in the
variables the platform sets (``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN``, the region, the request's
``Environment``). The SageMaker Python SDK v3 ``ModelTrainer`` works this way: it uploads its
driver scripts as the ``sm_drivers`` channel and the source directory as the ``code`` channel, and
asks for ``/bin/bash -c "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh && ..."``;
``sm_train.sh`` writes ``/opt/ml/input/sm_training.env`` and runs the entry script.

Here the command runs as given, with ``/opt/ml`` bound to the host's tree
(:mod:`cloudtrain.emulators.sagemaker_mounts`; a job fails with a ClientError saying why when the
machine does not allow it), in ``/`` (an image's default working directory). The image is not
pulled: each host gets a virtual environment of this interpreter (:func:`host_interpreter`) that
sees the packages installed here, first on ``PATH``, so ``python3 -m pip install`` in the job (the
SDK's ``requirements``) installs into that host's environment, never into the emulator's.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtrain.emulators.common import without_inherited
from cloudtrain.providers.process import NodeCommand

WORKING_DIRECTORY = "/"


def host_interpreter(directory: Path) -> Path:
    """A virtual environment at ``directory`` (no pip of its own) whose ``site-packages`` come before
    this interpreter's (a ``.pth`` file adds them); returns its ``bin`` directory."""
    done = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"could not create the job's Python environment: {done.stderr.strip()[-500:]}")
    site_packages = next((directory / "lib").glob("python*/site-packages"))
    inherited = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    (site_packages / "_cloudtrain_emulator_interpreter.pth").write_text("".join(f"{p}\n" for p in inherited))
    return directory / "bin"


@dataclass
class ContainerCommand:
    """The container command of one CreateTrainingJob request (see the module docstring)."""

    request: dict[str, Any]
    arn: str
    region: str

    @property
    def argv(self) -> list[str]:
        spec = self.request.get("AlgorithmSpecification") or {}
        return [*(spec.get("ContainerEntrypoint") or []), *(spec.get("ContainerArguments") or [])]

    @staticmethod
    def requested(request: dict[str, Any]) -> bool:
        return bool((request.get("AlgorithmSpecification") or {}).get("ContainerEntrypoint"))

    def environment(self, interpreter_bin: Path) -> dict[str, str]:
        """What the platform sets in the container, then the request's ``Environment``."""
        path = (str(interpreter_bin), os.path.dirname(sys.executable), os.environ.get("PATH", ""))
        env = {"TRAINING_JOB_NAME": self.request["TrainingJobName"], "TRAINING_JOB_ARN": self.arn,
               "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region, "PYTHONUNBUFFERED": "1",
               "PATH": os.pathsep.join(p for p in path if p)}
        env.update(self.request.get("Environment") or {})
        return env

    def node_command(self, host_code_dir: str, interpreter_bin: Path) -> NodeCommand:
        """The command as requested (to be bound to ``/opt/ml`` by the caller); ``host_code_dir``
        is where the process starts before the bind, ``interpreter_bin`` the host's :func:`host_interpreter`."""
        env = self.environment(interpreter_bin)
        return NodeCommand(argv=without_inherited(self.argv, env), env=env, cwd=host_code_dir)
