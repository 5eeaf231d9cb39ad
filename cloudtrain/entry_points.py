"""Installed packages' entry points, read quickly.

``importlib.metadata.entry_points(group=...)`` parses the metadata of every installed distribution
(25-70 ms in a full environment, on every command). Only the ``entry_points.txt`` files matter, so
:func:`select` reads those, once per process, and hands the few distributions that declare the
group to importlib.metadata; the first distribution on ``sys.path`` wins a name, as there.

:func:`preload_pydantic_plugins` gives pydantic the plugins of its ``pydantic`` group found this
way, before it would scan every distribution itself when the first model is built; what pydantic
then loads (and skips, under ``PYDANTIC_DISABLE_PLUGINS``) is what it would have loaded.
"""

from __future__ import annotations

import functools
import os
import sys
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


def preload_pydantic_plugins() -> None:
    """Fill pydantic's plugin cache from :func:`select`, as its own loader would fill it.

    Does nothing when pydantic has loaded its plugins already, or when its loader no longer keeps
    them where this expects (pydantic then scans by itself, as without this)."""
    try:
        from pydantic.plugin import _loader
    except ImportError:  # pragma: no cover - pydantic moved its loader
        return
    if getattr(_loader, "_plugins", False) is not None or getattr(_loader, "_loading_plugins", None) is not False:
        return
    disabled = os.getenv("PYDANTIC_DISABLE_PLUGINS")
    if disabled in ("__all__", "1", "true"):
        return
    plugins: dict[str, Any] = {}
    _loader._loading_plugins = True  # plugins that use pydantic get no plugins, as in pydantic's loader
    try:
        for entry in select(getattr(_loader, "PYDANTIC_ENTRY_POINT_GROUP", "pydantic")):
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
