"""The registry: the one source of backend names. Name -> "module:Class", with what to install
when it is missing.

Built-ins are listed here; third-party packages add backends through the ``cloudtrain.providers``
entry-point group (``toy = "toyct:ToyProvider"``), and are treated exactly like built-ins: the
CLI's ``--cloud`` choices, the spec's and config's per-backend sections, the
``CLOUDTRAIN_<BACKEND>_<KEY>`` variables, ``estimate`` and ``list`` all ask :func:`names` and
:func:`provider_class`. Nothing registers itself as a side effect of being imported: a backend's
module is imported the first time the backend is used (its cloud SDK later still, inside its
functions).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

from cloudtrain.errors import ProviderNotInstalledError, UsageError

GROUP = "cloudtrain.providers"


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


@functools.lru_cache(maxsize=1)
def _plugins() -> tuple[ProviderEntry, ...]:
    """The ``cloudtrain.providers`` entry points of the installed distributions (read quickly, by
    :mod:`cloudtrain.entry_points`)."""
    from cloudtrain import entry_points

    return tuple(ProviderEntry(ep.name, ep.value, f"reinstall the package that declares the {ep.name!r} backend")
                 for ep in entry_points.select(GROUP))


def entries() -> dict[str, ProviderEntry]:
    """Built-ins plus those declared by installed packages (built-ins win on a name clash)."""
    return {**{entry.name: entry for entry in _plugins()}, **BUILTIN}


def names() -> list[str]:
    """Every backend name: built-ins first, then plugins in name order."""
    plugins = sorted(name for name in entries() if name not in BUILTIN)
    return [*BUILTIN, *plugins]


def refresh() -> None:
    """Forget the entry points read so far (after installing a package in this process)."""
    from cloudtrain import entry_points

    entry_points.refresh()
    _plugins.cache_clear()
    provider_class.cache_clear()


def unknown_backend(name: str) -> UsageError:
    import difflib

    close = difflib.get_close_matches(name, names(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return UsageError(f"unknown cloud {name!r}", f"{hint}choose one of: {', '.join(names())}")


@functools.lru_cache(maxsize=None)
def provider_class(name: str) -> type:
    entry = entries().get(name)
    if entry is None:
        raise unknown_backend(name)
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise ProviderNotInstalledError(f"the {name} backend's module {module_name} is not installed",
                                            entry.install_hint or "upgrade cloudtrain, or check the provider's package") from None
        raise ProviderNotInstalledError(
            f"the {name} backend needs the package {error.name!r}, which is not installed",
            entry.install_hint or f"install the package that provides {entry.target}",
        ) from None
    cls = getattr(module, class_name, None)
    from cloudtrain.providers.base import Provider

    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderNotInstalledError(f"the {name} backend ({entry.target}) is not a cloudtrain.providers.Provider subclass",
                                        "fix the entry point of the package that declares it")
    if getattr(cls, "name", None) != name:
        raise ProviderNotInstalledError(f"the backend registered as {name!r} ({entry.target}) calls itself {getattr(cls, 'name', None)!r}",
                                        "make the entry point's name and the class's `name` agree")
    return cls


def available() -> dict[str, type]:
    """The backends whose modules import here (a plugin whose dependencies are missing is left out)."""
    found = {}
    for name in names():
        try:
            found[name] = provider_class(name)
        except ProviderNotInstalledError:
            continue
    return found


def get_provider(name: str, **options: Any) -> Any:
    """An instance of the named backend; ``options`` (e.g. ``client=``) go to its constructor."""
    return provider_class(name)(**options)
