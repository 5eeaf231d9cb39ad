"""Installed packages' entry points, read quickly.

``importlib.metadata.entry_points(group=...)`` parses the metadata of every installed distribution
(25-70 ms in a full environment, on every command). Only the ``entry_points.txt`` files matter, so
:func:`select` reads those, once per process, and hands the few distributions that declare the
group to importlib.metadata; the first distribution on ``sys.path`` wins a name, as there.

:func:`preload_pydantic_plugins` gives pydantic the plugins of its ``pydantic`` group found this
way, before it would scan every distribution itself when the first model is built; what pydantic
then loads (and skips, under ``PYDANTIC_DISABLE_PLUGINS``) is what it would have loaded. Where no
installed package declares a pydantic plugin (the usual case), pydantic's plugin loader is not even
imported: importing it imports ``importlib.metadata`` (email, zipfile, csv...), about 7% of what a
whole ``cloudtrain estimate`` costs. In its place stands :class:`NoPydanticPlugins`, whose
``get_plugins()`` gives what the real loader would give there, no plugins; any other name asked of
it brings in the real loader.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import types
import warnings
from typing import Any


@functools.lru_cache(maxsize=1)
def _files() -> tuple[tuple[str, str], ...]:
    """(distribution directory, entry_points.txt text) of every distribution on ``sys.path``."""
    found = []
    for directory in sys.path:
        try:
            names = os.listdir(directory or ".")
        except OSError:
            continue
        for name in sorted(names):
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(directory or ".", name)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as handle:
                    found.append((path, handle.read()))
            except (OSError, UnicodeDecodeError):
                continue
    return tuple(found)


def select(group: str) -> list[Any]:
    """The ``importlib.metadata.EntryPoint`` objects of ``group``, the first of a name winning."""
    header = f"[{group}]"
    chosen: dict[str, Any] = {}
    for path, text in _files():
        if header not in text:
            continue
        from importlib.metadata import Distribution  # only for a distribution that declares the group

        for entry in Distribution.at(path).entry_points.select(group=group):
            chosen.setdefault(entry.name, entry)
    return list(chosen.values())


def refresh() -> None:
    """Forget the files read so far (after installing a package in this process)."""
    _files.cache_clear()


PYDANTIC_LOADER = "pydantic.plugin._loader"


class NoPydanticPlugins(types.ModuleType):
    """Stands for pydantic's plugin loader in a process where no installed package declares a
    plugin: ``get_plugins()`` returns none, as the real loader would there. Any other name asked of
    it imports the real loader (which takes this one's place in ``sys.modules``) and answers from it."""

    def __init__(self) -> None:
        super().__init__(PYDANTIC_LOADER, "pydantic's plugin loader while no package declares a plugin")

    @staticmethod
    def get_plugins() -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(PYDANTIC_LOADER) is self:
            del sys.modules[PYDANTIC_LOADER]
        return getattr(importlib.import_module(PYDANTIC_LOADER), name)


def preload_pydantic_plugins() -> None:
    """Fill pydantic's plugin cache from :func:`select`, as its own loader would fill it, or, when
    no package declares a plugin, put :class:`NoPydanticPlugins` where pydantic imports its loader.

    Does nothing when pydantic has loaded its plugins already, or when its loader no longer keeps
    them where this expects (pydantic then scans by itself, as without this)."""
    group = "pydantic"
    if PYDANTIC_LOADER not in sys.modules and not select(group):
        sys.modules[PYDANTIC_LOADER] = NoPydanticPlugins()
        return
    try:
        from pydantic.plugin import _loader
    except ImportError:  # pragma: no cover - pydantic moved its loader
        return
    if isinstance(_loader, NoPydanticPlugins):
        return
    if getattr(_loader, "_plugins", False) is not None or getattr(_loader, "_loading_plugins", None) is not False:
        return
    disabled = os.getenv("PYDANTIC_DISABLE_PLUGINS")
    if disabled in ("__all__", "1", "true"):
        return
    plugins: dict[str, Any] = {}
    _loader._loading_plugins = True  # plugins that use pydantic get no plugins, as in pydantic's loader
    try:
        for entry in select(getattr(_loader, "PYDANTIC_ENTRY_POINT_GROUP", group)):
            if entry.value in plugins or (disabled is not None and entry.name in disabled.split(",")):
                continue
            try:
                plugins[entry.value] = entry.load()
            except (ImportError, AttributeError) as error:
                warnings.warn(f"{error.__class__.__name__} while loading the `{entry.name}` Pydantic plugin, "
                              f"this plugin will not be installed.\n\n{error!r}", stacklevel=2)
        _loader._plugins = plugins
    finally:
        _loader._loading_plugins = False
