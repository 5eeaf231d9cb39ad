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
pulled: ``python``/``python3``/``pip`` on ``PATH`` are this interpreter's (its directory comes
first), so the command runs with the packages installed here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from cloudtrain.emulators.common import without_inherited
from cloudtrain.providers.process import NodeCommand

WORKING_DIRECTORY = "/"


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

    def environment(self) -> dict[str, str]:
        """What the platform sets in the container, then the request's ``Environment``."""
        interpreter_dir = os.path.dirname(sys.executable)
        env = {"TRAINING_JOB_NAME": self.request["TrainingJobName"], "TRAINING_JOB_ARN": self.arn,
               "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region, "PYTHONUNBUFFERED": "1",
               "PATH": os.pathsep.join(p for p in (interpreter_dir, os.environ.get("PATH", "")) if p)}
        env.update(self.request.get("Environment") or {})
        return env

    def node_command(self, host_code_dir: str) -> NodeCommand:
        """The command as requested (to be bound to ``/opt/ml`` by the caller); ``host_code_dir``
        is where the process starts before the bind."""
        env = self.environment()
        return NodeCommand(argv=without_inherited(self.argv, env), env=env, cwd=host_code_dir)
