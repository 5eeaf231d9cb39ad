"""Execution backends: the contract in :mod:`cloudtrain.providers.base` (public here), the backends
by name in :mod:`cloudtrain.providers.registry`, one module per built-in backend (``local``,
``sagemaker``, ``azureml``, ``vertex``)."""

from cloudtrain.providers.base import Capabilities, JobRef, JobState, JobStatus, NativeRequest, NoSettings, Provider

__all__ = ["Capabilities", "JobRef", "JobState", "JobStatus", "NativeRequest", "NoSettings", "Provider"]
