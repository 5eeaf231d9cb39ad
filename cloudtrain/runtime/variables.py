"""The variables scripts written for one cloud read, set wherever the job runs. Stdlib only.

Real training scripts read their cloud's variables directly, most often as argparse defaults
(``parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])``, as the SageMaker
examples do, or ``os.environ["AIP_MODEL_DIR"]`` in Vertex's). So that such a script runs unchanged
on the local executor and on every cloud, each job also gets the other clouds' variables, with the
values of the place it runs (its :class:`~cloudtrain.runtime.context.RunContext`):

- SageMaker's training toolkit's: ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_CHANNELS`` and
  ``SM_CHANNEL_<NAME>`` (one per input, upper case: a folder, as a channel is; for an input that
  is one file, the folder holding it), ``SM_HPS`` and ``SM_HP_<NAME>``, ``SM_HOSTS``,
  ``SM_CURRENT_HOST`` (``algo-1``, ``algo-2``... by node), ``SM_NUM_GPUS``, ``SM_NUM_CPUS``;
- Vertex AI's: ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR`` (with checkpoints on),
  ``AIP_TENSORBOARD_LOG_DIR``.

A variable the environment already has is never replaced (on SageMaker the ``SM_*`` ones are the
cloud's own; on Vertex ``AIP_MODEL_DIR`` stays the ``gs://`` URI). ``CLOUDTRAIN_ENVIRONMENT`` names
the environment, so that :func:`~cloudtrain.runtime.context.context` still knows where it runs
when another cloud's variables are present. Azure ML sets no variable of this kind (its scripts
take paths as arguments and write to ``./outputs``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from cloudtrain.runtime.context import RunContext


def _text(value: Any) -> str:
    """A hyperparameter as the toolkit's ``SM_HP_<NAME>`` holds it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def cloud_variables(ctx: RunContext, hyperparameters: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every cloud's script variables for a job in ``ctx`` (``hyperparameters``: the job's own,
    when they differ from the context's, as a tuning trial's do)."""
    hps = dict(ctx.hyperparameters if hyperparameters is None else hyperparameters)
    hosts = [f"algo-{number + 1}" for number in range(max(ctx.num_nodes, 1))]
    variables = {
        "SM_MODEL_DIR": str(ctx.model_dir),
        "SM_OUTPUT_DATA_DIR": str(ctx.output_dir),
        "SM_CHANNELS": json.dumps(sorted(ctx.inputs)),
        **{f"SM_CHANNEL_{name.upper()}": str(path.parent if path.is_file() else path) for name, path in ctx.inputs.items()},
        "SM_HPS": json.dumps(hps),
        **{f"SM_HP_{name.upper()}": _text(value) for name, value in hps.items()},
        "SM_HOSTS": json.dumps(hosts),
        "SM_CURRENT_HOST": hosts[min(ctx.node_rank, len(hosts) - 1)],
        "SM_NUM_GPUS": str(ctx.num_gpus),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "AIP_MODEL_DIR": str(ctx.model_dir),
        "AIP_TENSORBOARD_LOG_DIR": str(ctx.tensorboard_dir or ctx.output_dir / "tensorboard"),
    }
    if ctx.checkpoint_dir is not None:
        variables["AIP_CHECKPOINT_DIR"] = str(ctx.checkpoint_dir)
    return variables


def missing_variables(ctx: RunContext, environ: Mapping[str, str],
                      hyperparameters: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The variables of :func:`cloud_variables` that ``environ`` lacks, with ``CLOUDTRAIN_ENVIRONMENT``."""
    missing = {name: value for name, value in cloud_variables(ctx, hyperparameters).items() if name not in environ}
    if "CLOUDTRAIN_ENVIRONMENT" not in environ:
        missing["CLOUDTRAIN_ENVIRONMENT"] = ctx.environment
    return missing
