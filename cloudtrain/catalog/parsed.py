"""The bundled tables (``data/machines_<cloud>.csv`` and ``data/<cloud>.csv``), parsed once.

Parsing the machine tables and price rows of the three clouds is most of what ``estimate`` and
every plan spend on the catalog (the machine tables are hundreds of rows, each with its region
list and its source). So :func:`bundled` keeps the parsed rows in the catalog cache directory as
a ``marshal`` file of plain tuples, stamped with the size and modification time of every table and
of the modules that parse them (and the Python version): any change to one of those, an upgrade or
a rebuilt table, parses again. The cache holds only bundled package data, never the user's own
prices or refreshed files (those are read each time); a cache that cannot be read or written is
ignored.
"""

from __future__ import annotations

import marshal
import os
import sys
import tempfile
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from cloudtrain.catalog import machines as _machines
from cloudtrain.catalog import offers as _offers
from cloudtrain.catalog.machines import Machine, read_machines
from cloudtrain.catalog.offers import CLOUDS, Offer, read_offers

DATA = Path(__file__).parent / "data"
FILE = "bundled-tables.marshal"
_MACHINE_FIELDS = tuple(f.name for f in fields(Machine))
_OFFER_FIELDS = tuple(f.name for f in fields(Offer))
_DATE = _OFFER_FIELDS.index("price_as_of")

Tables = tuple[dict[str, list[Machine]], dict[str, list[Offer]]]


def _paths(cloud: str) -> tuple[Path, Path]:
    """(machine table, bundled price file) of ``cloud``."""
    return DATA / f"machines_{cloud}.csv", DATA / f"{cloud}.csv"


def bundled_text(cloud: str) -> str:
    """The bundled price file of ``cloud``."""
    return _paths(cloud)[1].read_text(encoding="utf-8")


def machine_table(cloud: str) -> str | None:
    """The machine table of ``cloud``, None when it has none."""
    path = _paths(cloud)[0]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _stamp() -> tuple[Any, ...]:
    """What the parsed rows depend on: each table's and parser module's (name, size, mtime)."""
    stamp: list[Any] = [sys.version, _MACHINE_FIELDS, _OFFER_FIELDS]
    sources = [Path(_machines.__file__), Path(_offers.__file__), Path(__file__)]
    for path in [*sources, *(path for cloud in CLOUDS for path in _paths(cloud))]:
        try:
            info = path.stat()
            stamp.append((str(path), info.st_size, info.st_mtime_ns))
        except OSError:
            stamp.append((str(path), None, None))
    return tuple(stamp)


def parse() -> Tables:
    """Every cloud's machine table and bundled price rows, parsed and checked."""
    machines: dict[str, list[Machine]] = {}
    offers: dict[str, list[Offer]] = {}
    for cloud in CLOUDS:
        table = machine_table(cloud)
        machines[cloud] = read_machines(table, expected_cloud=cloud) if table is not None else []
        offers[cloud] = read_offers(bundled_text(cloud), expected_cloud=cloud)
    return machines, offers


def _offer_row(offer: Offer) -> tuple[Any, ...]:
    values = [getattr(offer, name) for name in _OFFER_FIELDS]
    if values[_DATE] is not None:
        values[_DATE] = values[_DATE].isoformat()
    return tuple(values)


def _offer(row: tuple[Any, ...]) -> Offer:
    values = list(row)
    if values[_DATE] is not None:
        values[_DATE] = date.fromisoformat(values[_DATE])
    return Offer(*values)


def _rows(tables: Tables) -> dict[str, Any]:
    machines, offers = tables
    return {"machines": {cloud: [tuple(getattr(m, name) for name in _MACHINE_FIELDS) for m in rows] for cloud, rows in machines.items()},
            "offers": {cloud: [_offer_row(o) for o in rows] for cloud, rows in offers.items()}}


def _tables(rows: dict[str, Any]) -> Tables:
    return ({cloud: [Machine(*row) for row in items] for cloud, items in rows["machines"].items()},
            {cloud: [_offer(row) for row in items] for cloud, items in rows["offers"].items()})


def bundled(cache_dir: str | None) -> Tables:
    """The parsed bundled tables, from ``cache_dir`` when its copy is current (else parsed, and
    written there for the next command)."""
    if cache_dir is None:
        return parse()
    stamp = _stamp()
    path = Path(cache_dir) / FILE
    try:
        with open(path, "rb") as handle:
            saved = marshal.loads(handle.read())
        if isinstance(saved, dict) and saved.get("stamp") == stamp:
            return _tables(saved["rows"])
    except (OSError, EOFError, ValueError, TypeError, KeyError):
        pass  # no copy yet, or one from another version: parse
    tables = parse()
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=cache_dir, prefix=".bundled-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                marshal.dump({"stamp": stamp, "rows": _rows(tables)}, out)
            os.replace(scratch, path)
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
    except OSError:
        pass  # a read-only cache directory: parse again next time
    return tables
