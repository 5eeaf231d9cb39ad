"""The static map of backends: name -> "module:Class", with what to install when it is missing.

Built-ins are listed here; third-party packages may add backends through the
``cloudtrain.providers`` entry-point group (``name = "package.module:Class"``). Nothing registers
itself as a side effect of being imported: a provider's module (and its cloud SDK) is imported the
first time that backend is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from cloudtrain.errors import ProviderNotInstalledError, UsageError


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    target: str  # "module:Class"
    install_hint: str | None = None


BUILTIN: dict[str, ProviderEntry] = {
    "local": ProviderEntry("local", "cloudtrain.providers.local:LocalProvider"),
    "sagemaker": ProviderEntry("sagemaker", "cloudtrain.providers.sagemaker:SageMakerProvider", "pip install 'cloudtrain[aws]'"),
    "azureml": ProviderEntry("azureml", "cloudtrain.providers.azureml:AzureMLProvider", "pip install 'cloudtrain[azure]'"),
    "vertex": ProviderEntry("vertex", "cloudtrain.providers.vertex:VertexProvider", "pip install 'cloudtrain[gcp]'"),
}


def entries() -> dict[str, ProviderEntry]:
    """Built-ins plus those declared by installed packages (built-ins win on a name clash)."""
    from importlib.metadata import entry_points

    found = {ep.name: ProviderEntry(ep.name, ep.value) for ep in entry_points(group="cloudtrain.providers")}
    return {**found, **BUILTIN}


def provider_class(name: str) -> type:
    entry = BUILTIN.get(name) or entries().get(name)
    if entry is None:
        raise UsageError(f"unknown cloud {name!r}", f"choose one of: {', '.join(sorted(entries()))}")
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise ProviderNotInstalledError(f"the {name} backend is not part of this cloudtrain installation", "upgrade cloudtrain, or check the provider's package") from None
        raise ProviderNotInstalledError(
            f"the {name} backend needs the package {error.name!r}, which is not installed",
            entry.install_hint or f"install the package that provides {entry.target}",
        ) from None
    return getattr(module, class_name)


def get_provider(name: str, **options: Any) -> Any:
    """An instance of the named backend; ``options`` (e.g. ``client=``) go to its constructor."""
    return provider_class(name)(**options)
