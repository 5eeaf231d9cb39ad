"""An offer: one instance type in one region, with its facts and, where sourced, its prices.

Price files (``data/<cloud>.csv``, the refresh cache, a user's ``prices import``) hold priced
offers, one per row; their CSV header is exactly :data:`FIELDS`. Empty cells mean "none": no
accelerator (CPU-only offers, whose ``accelerator_count`` is 0), no published spot price. Prices are
USD per hour for the whole instance (or node). ``price_as_of`` is the ISO date the figure was true
and ``source`` names the public page or API it came from. An offer built from the machine tables
alone (:mod:`cloudtrain.catalog.machines`) has no price: ``usd_per_hour`` is None, and
``price_origin`` says why (``"no sourced price"``). ``price_origin`` is ``"catalog"`` for bundled or
refreshed prices and ``"your price"`` for the user's own.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Iterable, Iterator, Sequence

from cloudtrain.catalog.accelerators import normalize_accelerator

CLOUDS: tuple[str, ...] = ("sagemaker", "azureml", "vertex")

FIELDS: tuple[str, ...] = (
    "cloud",
    "region",
    "instance_type",
    "accelerator",
    "accelerator_count",
    "accelerator_memory_gib",
    "vcpus",
    "memory_gib",
    "usd_per_hour",
    "spot_usd_per_hour",
    "price_as_of",
    "source",
)


class OfferFormatError(ValueError):
    """A catalog row or file is malformed."""


@dataclass(frozen=True)
class Offer:
    """An instance type a cloud sells in one region, with its facts and hourly prices."""

    cloud: str
    region: str
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    accelerator_memory_gib: float | None
    vcpus: int
    memory_gib: float
    usd_per_hour: float | None
    spot_usd_per_hour: float | None
    price_as_of: date | None
    source: str | None
    price_origin: str = "catalog"  # "catalog", "your price", or "no sourced price"

    @property
    def has_accelerator(self) -> bool:
        return self.accelerator is not None and self.accelerator_count > 0

    @property
    def priced(self) -> bool:
        return self.usd_per_hour is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the catalog fields (the date as an ISO string)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name in FIELDS}
        data["price_as_of"] = self.price_as_of.isoformat() if self.price_as_of else None
        return data

    def to_row(self) -> dict[str, str]:
        """The CSV cells of this offer (deterministic number formatting)."""
        return {name: _cell(value) for name, value in self.to_dict().items()}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _positive_float(name: str, text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise OfferFormatError(f"{name} must be a positive number, got {text!r}")
    return value


def csv_rows(text: str, header: tuple[str, ...], what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank row of a CSV whose header must be exactly ``header``;
    a row with missing cells is refused (csv.reader's tuples: a dict per row costs more than the
    parse itself, on every command that reads the catalog)."""
    rows = csv.reader(io.StringIO(text))
    if tuple(next(rows, ())) != header:
        raise OfferFormatError(f"{what} header must be {','.join(header)}")
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < len(header):
            raise OfferFormatError(f"line {line_number}: missing columns: {', '.join(header[len(row):])}")
        yield line_number, row


def offer_from_row(row: Sequence[str]) -> Offer:
    """Parse one CSV row (its cells in :data:`FIELDS` order; extra cells are ignored); raises
    :class:`OfferFormatError` on anything incomplete or insane."""
    try:
        (cloud, region, instance_type, accelerator_cell, count_cell, memory_cell, vcpus_cell, memory_gib,
         usd_cell, spot_cell, as_of, source) = (cell.strip() for cell in row[:len(FIELDS)])
        if cloud not in CLOUDS:
            raise OfferFormatError(f"unknown cloud {cloud!r}")
        for name, value in (("region", region), ("instance_type", instance_type), ("source", source), ("price_as_of", as_of)):
            if not value:
                raise OfferFormatError(f"{name} is empty")
        accelerator = normalize_accelerator(accelerator_cell) if accelerator_cell else None
        count = int(count_cell or 0)
        if (accelerator is None) != (count == 0):
            raise OfferFormatError("accelerator and accelerator_count disagree")
        usd = _positive_float("usd_per_hour", usd_cell)
        spot = _positive_float("spot_usd_per_hour", spot_cell) if spot_cell else None
        if spot is not None and spot >= usd:
            raise OfferFormatError("spot_usd_per_hour must be below usd_per_hour")
        vcpus = int(vcpus_cell)
        if vcpus <= 0:
            raise OfferFormatError("vcpus must be positive")
        return Offer(
            cloud=cloud,
            region=region,
            instance_type=instance_type,
            accelerator=accelerator,
            accelerator_count=count,
            accelerator_memory_gib=_positive_float("accelerator_memory_gib", memory_cell) if memory_cell else None,
            vcpus=vcpus,
            memory_gib=_positive_float("memory_gib", memory_gib),
            usd_per_hour=usd,
            spot_usd_per_hour=spot,
            price_as_of=date.fromisoformat(as_of),
            source=source,
        )
    except OfferFormatError:
        raise
    except Exception as exc:  # ValueError from int()/float()/fromisoformat, CatalogError...
        raise OfferFormatError(str(exc)) from exc


def read_offers(text: str, *, expected_cloud: str | None = None) -> list[Offer]:
    """Parse a whole catalog CSV; the header must be exactly :data:`FIELDS`."""
    offers = []
    for line_number, row in csv_rows(text, FIELDS, "price file"):
        try:
            offer = offer_from_row(row)
        except OfferFormatError as exc:
            raise OfferFormatError(f"line {line_number}: {exc}") from exc
        if expected_cloud is not None and offer.cloud != expected_cloud:
            raise OfferFormatError(f"line {line_number}: cloud {offer.cloud!r} in the {expected_cloud} file")
        offers.append(offer)
    return offers


def unpriced(offer: Offer, region: str) -> Offer:
    """The same machine in ``region``, without a price."""
    from dataclasses import replace

    return replace(offer, region=region, usd_per_hour=None, spot_usd_per_hour=None, price_as_of=None, source=None,
                   price_origin="no sourced price")


def sort_key(offer: Offer) -> tuple[Any, ...]:
    return (offer.cloud, offer.region, offer.instance_type)


def write_offers(offers: Iterable[Offer]) -> str:
    """The CSV text of ``offers``, sorted by cloud, region and instance type (deterministic)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for offer in sorted(offers, key=sort_key):
        if offer.priced:
            writer.writerow(offer.to_row())
    return buffer.getvalue()
