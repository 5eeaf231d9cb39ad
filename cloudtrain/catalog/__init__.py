"""The instance & price catalog: versioned CSV package data plus a thin typed query layer.

``data/<cloud>.csv`` holds one row per offer (cloud, region, instance type) with the instance's
facts (vCPUs, memory, accelerator name, count and memory) and its on-demand and spot USD per hour,
the date each price was true and its public source. ``scripts/build_catalog.py`` rebuilds those
files from sourced price tables; ``cloudtrain prices refresh`` (``cloudtrain.catalog.refresh``)
writes a per-user cache from the clouds' public pricing APIs, which overrides the bundled rows.

Public API::

    load_catalog(cache_dir=None) -> Catalog
    Catalog.find(cloud, *, region, accelerator, accelerator_count, min_vcpus, min_memory_gib,
                 instance_type) -> list[Offer]            # cheapest first, [] when nothing matches
    Catalog.explain_no_match(cloud, **same) -> CatalogError
    Catalog.cheapest(cloud, **same) -> Offer              # or raises that CatalogError
    Catalog.filter(cloud=None, region=None, gpu=None), Catalog.regions(cloud), Catalog.accelerators()
    normalize_accelerator(name) -> str

Importing this package reads no file and imports no cloud SDK (stdlib only).
"""

from __future__ import annotations

from cloudtrain.catalog.accelerators import KNOWN_ACCELERATORS, normalize_accelerator
from cloudtrain.catalog.loading import clear_cache, load_catalog
from cloudtrain.catalog.offers import CLOUDS, FIELDS, Offer
from cloudtrain.catalog.query import Catalog

__all__ = [
    "CLOUDS",
    "FIELDS",
    "KNOWN_ACCELERATORS",
    "Catalog",
    "Offer",
    "clear_cache",
    "load_catalog",
    "normalize_accelerator",
]
