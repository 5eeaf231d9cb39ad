"""cloudtrain: one provider-neutral training job spec, run locally or on SageMaker, Azure ML and Vertex AI.

Importing this package is cheap: it loads no cloud SDK, torch or scikit-learn. The public names
below are imported on first use: :class:`~cloudtrain.api.Job`, :class:`~cloudtrain.api.Run` and
:func:`~cloudtrain.api.runs` (the Python API, see :mod:`cloudtrain.api`), the spec model, and errors.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Job": "cloudtrain.api",
    "Run": "cloudtrain.api",
    "runs": "cloudtrain.api",
    "JobSpec": "cloudtrain.spec",
    "load_spec": "cloudtrain.specfile",
    "CloudtrainError": "cloudtrain.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudtrain' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
