"""Pure parsers of the three clouds' public pricing API responses (documented shapes).

Each parser takes already-decoded JSON and returns :class:`PriceRow` s; none does I/O.

* AWS Price List bulk API, offer ``AmazonSageMaker``, one region file
  (``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/<region>/index.json``):
  ``{"publicationDate", "products": {sku: {"attributes": {"usagetype", "regionCode", ...}}},
  "terms": {"OnDemand": {sku: {term: {"priceDimensions": {rate: {"unit", "pricePerUnit": {"USD"}}}}}}}}``.
  Only training usage types (``<REGION>-Train:ml.<type>``) are kept.
* Azure Retail Prices API (``https://prices.azure.com/api/retail/prices``): pages of
  ``{"Items": [...], "NextPageLink"}``, items with ``armRegionName``, ``armSkuName``,
  ``retailPrice``, ``unitOfMeasure``, ``type``, ``serviceName``, ``productName``, ``meterName``,
  ``skuName``, ``effectiveStartDate``. Linux = product names without "Windows"; meters ending in
  " Spot" are spot prices, " Low Priority" meters are skipped.
* GCP Cloud Billing Catalog API (``services/<id>/skus``): ``{"skus": [{"description",
  "category": {"usageType"}, "serviceRegions", "pricingInfo": [{"pricingExpression":
  {"usageUnit", "tieredRates": [{"unitPrice": {"units", "nanos"}}]}}]}]}``. Vertex bills custom
  training per resource (machine-family core-hours and GiB-hours, accelerator-hours), so the
  parser returns component rates; :func:`vertex_instance_prices` sums them per instance type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

AWS_TRAINING_USAGE = re.compile(r"^[A-Z0-9]+-Train:(?P<type>ml\.[a-z0-9\-]+\.[a-z0-9]+)$")


@dataclass(frozen=True)
class PriceRow:
    """One sourced price: the on-demand (and spot, where published) USD per hour of a type."""

    region: str
    instance_type: str
    usd_per_hour: float
    spot_usd_per_hour: float | None
    price_as_of: date
    source: str


class PriceParseError(ValueError):
    """A pricing API response does not have the documented shape."""


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise PriceParseError(f"{where}: missing {key!r}")
    return mapping[key]


def parse_aws_price_list(doc: Mapping[str, Any], *, source: str = "AWS Price List bulk API (AmazonSageMaker)") -> list[PriceRow]:
    """SageMaker TRAINING on-demand prices in one AWS Price List offer file (no spot: AWS publishes none)."""
    published = str(_require(doc, "publicationDate", "offer file"))[:10]
    as_of = date.fromisoformat(published)
    products = _require(doc, "products", "offer file")
    on_demand = _require(_require(doc, "terms", "offer file"), "OnDemand", "terms")
    rows: dict[tuple[str, str], PriceRow] = {}
    for sku, product in products.items():
        attributes = _require(product, "attributes", f"product {sku}")
        match = AWS_TRAINING_USAGE.match(str(attributes.get("usagetype", "")))
        region = attributes.get("regionCode")
        if match is None or not region or sku not in on_demand:
            continue
        for term in on_demand[sku].values():
            for dimension in _require(term, "priceDimensions", f"term of {sku}").values():
                if dimension.get("unit") not in ("Hrs", "Hours"):
                    continue
                price = float(_require(dimension.get("pricePerUnit", {}), "USD", f"price of {sku}"))
                if price <= 0:
                    continue
                key = (region, match["type"])
                rows[key] = PriceRow(region, match["type"], price, None, as_of, f"{source}, usagetype {attributes['usagetype']}")
    return sorted(rows.values(), key=lambda r: (r.region, r.instance_type))


def parse_azure_retail_prices(
    pages: Iterable[Mapping[str, Any]], *, as_of: date, source: str = "Azure Retail Prices API"
) -> list[PriceRow]:
    """Linux pay-as-you-go VM prices (with the Spot meter's price when there is one)."""
    on_demand: dict[tuple[str, str], float] = {}
    spot: dict[tuple[str, str], float] = {}
    for page in pages:
        for item in _require(page, "Items", "price page"):
            if item.get("serviceName") != "Virtual Machines" or item.get("unitOfMeasure") != "1 Hour":
                continue
            if item.get("type") != "Consumption" or "Windows" in str(item.get("productName", "")):
                continue
            meter = f"{item.get('meterName', '')} {item.get('skuName', '')}"
            if "Low Priority" in meter:
                continue
            key = (str(_require(item, "armRegionName", "item")), str(_require(item, "armSkuName", "item")))
            price = float(_require(item, "retailPrice", "item"))
            if price <= 0 or not key[1]:
                continue
            target = spot if "Spot" in meter else on_demand
            target[key] = min(price, target.get(key, price))
    rows = []
    for (region, sku), price in sorted(on_demand.items()):
        spot_price = spot.get((region, sku))
        rows.append(PriceRow(region, sku, price, spot_price if spot_price and spot_price < price else None, as_of, source))
    return rows


@dataclass(frozen=True)
class VertexRate:
    """One Vertex AI training SKU rate: a machine family's core or RAM hour, or an accelerator hour."""

    region: str
    resource: str  # "N1:core", "N1:ram", "A2:core"... or "NVIDIA_TESLA_T4"
    usd: float
    spot: bool


_FAMILY = re.compile(r"\b(?P<family>N1|N2|N2D|E2|C2|A2|A3|G2)\b.*?\bInstance (?P<kind>Core|Ram)\b", re.IGNORECASE)
_GPU_NAMES = {
    "tesla t4": "NVIDIA_TESLA_T4",
    "tesla v100": "NVIDIA_TESLA_V100",
    "tesla a100 80gb": "NVIDIA_A100_80GB",
    "a100 80gb": "NVIDIA_A100_80GB",
    "tesla a100": "NVIDIA_TESLA_A100",
    "h100 80gb": "NVIDIA_H100_80GB",
    "h100": "NVIDIA_H100_80GB",
    "l4": "NVIDIA_L4",
}


def _gpu_resource(description: str) -> str | None:
    lowered = description.lower()
    if "gpu" not in lowered:
        return None
    for name, resource in _GPU_NAMES.items():  # longest names first where they overlap
        if re.search(r"\b" + re.escape(name) + r"\b", lowered):
            return resource
    return None


def _unit_price(sku: Mapping[str, Any]) -> float:
    info = _require(sku, "pricingInfo", "sku")
    if not info:
        raise PriceParseError("sku: empty pricingInfo")
    rates = _require(_require(info[-1], "pricingExpression", "pricingInfo"), "tieredRates", "pricingExpression")
    price = _require(rates[-1], "unitPrice", "tieredRate")
    return int(price.get("units") or 0) + int(price.get("nanos") or 0) / 1e9


def parse_gcp_billing_skus(doc: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[VertexRate]:
    """Vertex AI custom-training component rates from Cloud Billing Catalog ``skus.list`` pages."""
    pages = [doc] if isinstance(doc, Mapping) else list(doc)
    rates = []
    for page in pages:
        for sku in _require(page, "skus", "skus page"):
            description = str(_require(sku, "description", "sku"))
            if "training" not in description.lower():
                continue
            family = _FAMILY.search(description)
            resource = f"{family['family'].upper()}:{family['kind'].lower()}" if family else _gpu_resource(description)
            if resource is None:
                continue
            usage = str(_require(sku, "category", "sku").get("usageType", "OnDemand"))
            if usage not in ("OnDemand", "Preemptible"):
                continue
            price = _unit_price(sku)
            for region in sku.get("serviceRegions", []):
                rates.append(VertexRate(region, resource, price, usage == "Preemptible"))
    return rates


def vertex_instance_prices(
    rates: Iterable[VertexRate],
    facts: Mapping[str, Mapping[str, Any]],
    *,
    as_of: date,
    source: str = "GCP Cloud Billing Catalog API (Vertex AI SKUs)",
) -> list[PriceRow]:
    """Sum component rates into per-instance prices for the instance types in ``facts``.

    ``facts[instance_type]`` gives ``vcpus``, ``memory_gib``, ``accelerator_count`` and the
    Vertex machine family (from the name); an instance type is priced in a region only when every
    component it needs has a rate there. Spot is priced only when every component has a spot rate.
    """
    table: dict[tuple[str, str, bool], float] = {}
    for rate in rates:
        table[(rate.region, rate.resource, rate.spot)] = rate.usd
    regions = sorted({region for region, _, _ in table})
    rows = []
    for instance_type, fact in sorted(facts.items()):
        machine, _, attachment = instance_type.partition("+")
        family = machine.split("-")[0].upper()
        parts = [(f"{family}:core", float(fact["vcpus"])), (f"{family}:ram", float(fact["memory_gib"]))]
        if attachment:
            accelerator, _, count = attachment.rpartition("x")
            parts.append((accelerator, float(count)))
        elif int(fact.get("accelerator_count") or 0) and fact.get("vertex_accelerator"):
            parts.append((str(fact["vertex_accelerator"]), float(fact["accelerator_count"])))
        for region in regions:
            prices = []
            for spot in (False, True):
                needed = [table.get((region, resource, spot)) for resource, _ in parts]
                prices.append(None if None in needed else sum(r * q for r, (_, q) in zip(needed, parts)))  # type: ignore[operator]
            if prices[0]:
                spot_price = prices[1] if prices[1] and prices[1] < prices[0] else None
                rows.append(PriceRow(region, instance_type, round(prices[0], 8), spot_price and round(spot_price, 8), as_of, source))
    return rows
