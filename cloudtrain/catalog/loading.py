"""Loading the catalog: the machine tables, joined with prices (bundled package data, overridden
per cloud by the user's cached files, and by the user's own prices).

Offers are every machine of ``data/machines_<cloud>.csv`` in every region it trains in
(:mod:`cloudtrain.catalog.machines`), each with its price where one is sourced. Prices:
``<cache_dir>/<cloud>.csv`` (written by ``cloudtrain prices refresh``) replaces the bundled rows
of that cloud when it parses completely; a cache file that does not parse is ignored (the bundled
rows stay in use) and named in ``Catalog.warnings``. ``<cache_dir>/your-prices.csv`` (written by
``cloudtrain prices import``: negotiated prices, discounts) wins over both, row by row, and its
offers say ``price_origin="your price"``. Results are cached per process and cache directory;
:func:`clear_cache` forgets them (refresh and import call it after writing). The bundled tables'
parsed rows are also kept in the cache directory between commands (:mod:`cloudtrain.catalog.parsed`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from cloudtrain.catalog.machines import MachineOffers
from cloudtrain.catalog.offers import CLOUDS, Offer, OfferFormatError, read_offers
from cloudtrain.catalog.parsed import DATA, bundled, bundled_text, machine_table  # noqa: F401 (DATA and the readers: public here)
from cloudtrain.catalog.query import Catalog

USER_PRICES = "your-prices.csv"
def load_catalog(cache_dir: Path | None = None) -> Catalog:
    """The catalog: bundled offers, each cloud replaced by a valid cached file when present."""
    return _load(str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None)


def clear_cache() -> None:
    _load.cache_clear()


@functools.lru_cache(maxsize=8)
def _load(cache_dir: str | None) -> Catalog:
    machines, priced_offers = [], []
    origins: dict[str, str] = {}
    warnings: list[str] = []
    yours = _user_prices(cache_dir, warnings)
    tables, bundled_offers = bundled(cache_dir)
    for cloud in CLOUDS:
        cached = _cached_offers(cache_dir, cloud, warnings)
        if cached is not None:
            priced = cached
            origins[cloud] = str(Path(cache_dir or "") / f"{cloud}.csv")
        else:
            priced = bundled_offers[cloud]
            origins[cloud] = "bundled"
        own = {(o.instance_type, o.region): o for o in yours if o.cloud == cloud}
        priced = [own.pop((o.instance_type, o.region), o) for o in priced] + list(own.values())
        machines.extend(tables[cloud])
        priced_offers.extend(priced)
    return Catalog(offers=MachineOffers(machines, priced_offers), origins=origins, warnings=tuple(warnings))  # type: ignore[arg-type]


def _user_prices(cache_dir: str | None, warnings: list[str]) -> list[Offer]:
    from dataclasses import replace

    if cache_dir is None or not (Path(cache_dir) / USER_PRICES).is_file():
        return []
    path = Path(cache_dir) / USER_PRICES
    try:
        return [replace(o, price_origin="your price") for o in read_offers(path.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError, OfferFormatError) as exc:
        warnings.append(f"Ignored your prices in {path} ({exc}); run `cloudtrain prices import` again.")
        return []


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
