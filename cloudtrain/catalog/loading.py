"""Loading the catalog: bundled package data, overridden per cloud by the user's cached files.

``<cache_dir>/<cloud>.csv`` (written by ``cloudtrain prices refresh``) replaces the bundled rows
of that cloud when it parses completely; a cache file that does not parse is ignored (the bundled
rows stay in use) and named in ``Catalog.warnings``. Results are cached per process and cache
directory; :func:`clear_cache` forgets them (the refresh calls it after writing).
"""

from __future__ import annotations

import functools
from pathlib import Path

from cloudtrain.catalog.offers import CLOUDS, Offer, OfferFormatError, read_offers
from cloudtrain.catalog.query import Catalog


def bundled_text(cloud: str) -> str:
    from importlib import resources  # imported on first load only: it is slow to import

    return (resources.files("cloudtrain.catalog") / "data" / f"{cloud}.csv").read_text(encoding="utf-8")


def load_catalog(cache_dir: Path | None = None) -> Catalog:
    """The catalog: bundled offers, each cloud replaced by a valid cached file when present."""
    return _load(str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None)


def clear_cache() -> None:
    _load.cache_clear()


@functools.lru_cache(maxsize=8)
def _load(cache_dir: str | None) -> Catalog:
    offers: list[Offer] = []
    origins: dict[str, str] = {}
    warnings: list[str] = []
    for cloud in CLOUDS:
        cached = _cached_offers(cache_dir, cloud, warnings)
        if cached is not None:
            offers.extend(cached)
            origins[cloud] = str(Path(cache_dir or "") / f"{cloud}.csv")
        else:
            offers.extend(read_offers(bundled_text(cloud), expected_cloud=cloud))
            origins[cloud] = "bundled"
    return Catalog(offers=offers, origins=origins, warnings=tuple(warnings))


def _cached_offers(cache_dir: str | None, cloud: str, warnings: list[str]) -> list[Offer] | None:
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{cloud}.csv"
    if not path.is_file():
        return None
    try:
        offers = read_offers(path.read_text(encoding="utf-8"), expected_cloud=cloud)
    except (OSError, UnicodeDecodeError, OfferFormatError) as exc:
        warnings.append(f"Ignored the cached {cloud} prices in {path} ({exc}); using the bundled catalog.")
        return None
    if not offers:
        warnings.append(f"Ignored the cached {cloud} prices in {path} (no rows); using the bundled catalog.")
        return None
    return offers
