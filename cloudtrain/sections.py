"""The backends' sections of specs and config files, from the registry.

Each backend owns the pydantic model of its section (``Provider.settings_model``). Here those
models become fields of the spec model (:func:`spec_model`: :class:`~cloudtrain.spec.JobSpec` plus
one field per registered backend, built-ins and plugins alike), the sections a config file may
hold (:func:`config_sections`), the ``CLOUDTRAIN_<BACKEND>_<KEY>`` variables
(:func:`variable_settings`) and the clouds' own variables each backend reads
(:func:`native_settings`). A plugin whose module cannot be imported keeps a section that takes
any mapping, so a spec naming it still loads; using the backend then says what is missing.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from pydantic import BaseModel, Field, create_model

from cloudtrain.spec import JobSpec


def settings_models() -> dict[str, type[BaseModel] | None]:
    """Backend name -> its settings model (None when the backend's module cannot be imported)."""
    from cloudtrain.errors import ProviderNotInstalledError
    from cloudtrain.providers import registry

    models: dict[str, type[BaseModel] | None] = {}
    for name in registry.names():
        try:
            models[name] = registry.provider_class(name).settings_model
        except ProviderNotInstalledError:
            models[name] = None
    return models


def spec_model() -> type[JobSpec]:
    """The spec model with a section per registered backend (cached per set of backends)."""
    from cloudtrain.providers import registry

    return _spec_model(tuple(registry.names()))


@functools.lru_cache(maxsize=4)
def _spec_model(names: tuple[str, ...]) -> type[JobSpec]:
    fields: dict[str, Any] = {}
    for name, model in settings_models().items():
        if name in JobSpec.model_fields:
            continue  # a backend may not shadow a spec field
        if model is None:
            fields[name] = (dict[str, Any], Field(default_factory=dict, description=f"Settings of the {name} backend (not installed)."))
        else:
            fields[name] = (model, Field(default_factory=dict, validate_default=True, description=f"Settings of the {name} backend."))
    return create_model("JobSpec", __base__=JobSpec, __module__="cloudtrain.spec", **fields)


def config_sections() -> list[str]:
    """The sections a config file (``cloudtrain.yaml``, the user config) may hold."""
    from cloudtrain.providers import registry

    return registry.names()


def variable_settings(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``CLOUDTRAIN_<BACKEND>_<KEY>`` variables, per backend section (``CLOUDTRAIN_RUNS_DIR`` is
    the local backend's ``runs_dir``, as before)."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in settings_models().items():
        if model is None:
            continue
        for key in model.model_fields:
            value = environ.get(f"CLOUDTRAIN_{name.upper()}_{key.upper()}")
            if value:
                out.setdefault(name, {})[key] = value
    if environ.get("CLOUDTRAIN_RUNS_DIR") and "runs_dir" not in out.get("local", {}):
        out.setdefault("local", {})["runs_dir"] = environ["CLOUDTRAIN_RUNS_DIR"]
    return out


def native_settings(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The clouds' own variables as their SDKs read them (``AWS_REGION`` for sagemaker.region...),
    as each backend declares in ``native_variables``."""
    from cloudtrain.errors import ProviderNotInstalledError
    from cloudtrain.providers import registry

    out: dict[str, dict[str, Any]] = {}
    for name in registry.names():
        try:
            variables = registry.provider_class(name).native_variables
        except ProviderNotInstalledError:
            continue
        for key, candidates in variables.items():
            value = next((environ[v] for v in candidates if environ.get(v)), None)
            if value:
                out.setdefault(name, {})[key] = value
    return out
