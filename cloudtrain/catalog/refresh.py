"""``cloudtrain prices refresh``: rebuild the user's cached catalog from public pricing APIs.

:func:`refresh` fetches one cloud's prices, joins them with the instance facts of the bundled
catalog (only instance types whose facts are known are kept), and writes
``<cache_dir>/<cloud>.csv`` atomically (temporary file + ``os.replace``). If fetching or parsing
fails, nothing is written and the previous cache (or the bundled catalog) stays in use.

* sagemaker: AWS Price List bulk API, one offer file per region (training usage types only). No
  credentials needed. AWS publishes no SageMaker spot price, so spot stays empty.
* azureml: Azure Retail Prices API, filtered on 'Virtual Machines' meters of the known sizes in
  each region, following ``NextPageLink``. No credentials needed.
* vertex: GCP Cloud Billing Catalog API, which requires an API key: set ``GOOGLE_API_KEY`` or
  ``CLOUDTRAIN_GCP_API_KEY``. Without one, refresh raises a :class:`CatalogError` saying so.

It never runs at import time; the CLI calls it on the user's request only.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Mapping

from cloudtrain.catalog.loading import bundled_text, clear_cache
from cloudtrain.catalog.offers import CLOUDS, Offer, read_offers, write_offers
from cloudtrain.catalog.price_apis import (
    PriceParseError,
    PriceRow,
    parse_aws_price_list,
    parse_azure_retail_prices,
    parse_gcp_billing_skus,
    vertex_instance_prices,
)
from cloudtrain.errors import CatalogError

Fetch = Callable[[str], Any]

AWS_OFFER_URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/{region}/index.json"
AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"
GCP_SKUS_URL = "https://cloudbilling.googleapis.com/v1/services/{service}/skus"
VERTEX_SERVICE_ID = "C7E2-9256-1C43"  # "Vertex AI" in the Cloud Billing Catalog
GCP_KEY_VARIABLES = ("CLOUDTRAIN_GCP_API_KEY", "GOOGLE_API_KEY")
DEFAULT_REGIONS = {
    "sagemaker": ("us-east-1", "us-west-2", "eu-west-1"),
    "azureml": ("eastus", "westus2", "westeurope"),
    "vertex": ("us-central1", "us-east1", "europe-west4"),
}
MAX_PAGES = 50
TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class RefreshSummary:
    """What a refresh wrote: the cache file and how many offers per region."""

    cloud: str
    path: Path
    rows_per_region: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows_per_region.values())


def fetch_json(url: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    """GET ``url`` and decode its JSON body (``urllib.request``, with a timeout)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "cloudtrain"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - https URLs only
        return json.loads(response.read().decode("utf-8"))


def refresh(
    cloud: str,
    cache_dir: Path,
    fetch: Fetch | None = None,
    *,
    regions: tuple[str, ...] | None = None,
    today: date | None = None,
    environ: Mapping[str, str] | None = None,
) -> RefreshSummary:
    """Rebuild ``<cache_dir>/<cloud>.csv`` from the cloud's public pricing API."""
    if cloud not in CLOUDS:
        raise CatalogError(f"Unknown cloud {cloud!r}.", hint=f"Choose one of: {', '.join(CLOUDS)}.")
    fetch = fetch or fetch_json
    today = today or date.today()
    environ = os.environ if environ is None else environ
    facts = _bundled_facts(cloud)
    wanted_regions = regions or tuple(sorted({*DEFAULT_REGIONS[cloud], *(o.region for o in facts.values())}))
    try:
        if cloud == "sagemaker":
            prices = _sagemaker_prices(fetch, wanted_regions)
        elif cloud == "azureml":
            prices = _azure_prices(fetch, wanted_regions, sorted(facts), today)
        else:
            prices = _vertex_prices(fetch, wanted_regions, facts, today, environ)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise CatalogError(
            f"The {cloud} pricing API is unreachable ({exc}). Nothing was changed: the "
            f"{'cached' if (Path(cache_dir) / f'{cloud}.csv').exists() else 'bundled'} {cloud} prices stay in use.",
            hint="Check your network connection (or proxy settings) and run the refresh again.",
        ) from exc
    except (PriceParseError, KeyError, TypeError, ValueError) as exc:
        raise CatalogError(
            f"The {cloud} pricing API answered in an unexpected shape ({exc}). Nothing was changed.",
            hint="Report this to the cloudtrain maintainers; the previous prices stay in use.",
        ) from exc
    offers = [_offer(cloud, row, facts[row.instance_type]) for row in prices if row.instance_type in facts]
    if not offers:
        raise CatalogError(
            f"The {cloud} pricing API returned no price for any instance type the catalog knows "
            f"in {', '.join(wanted_regions)}. Nothing was changed.",
            hint="Try other regions with --region, or keep using the bundled catalog.",
        )
    path = _write_atomically(Path(cache_dir) / f"{cloud}.csv", write_offers(offers))
    clear_cache()
    counts: dict[str, int] = {}
    for offer in offers:
        counts[offer.region] = counts.get(offer.region, 0) + 1
    return RefreshSummary(cloud, path, dict(sorted(counts.items())))


def _bundled_facts(cloud: str) -> dict[str, Offer]:
    facts: dict[str, Offer] = {}
    for offer in read_offers(bundled_text(cloud), expected_cloud=cloud):
        facts.setdefault(offer.instance_type, offer)
    return facts


def _offer(cloud: str, row: PriceRow, fact: Offer) -> Offer:
    return Offer(
        cloud=cloud,
        region=row.region,
        instance_type=row.instance_type,
        accelerator=fact.accelerator,
        accelerator_count=fact.accelerator_count,
        accelerator_memory_gib=fact.accelerator_memory_gib,
        vcpus=fact.vcpus,
        memory_gib=fact.memory_gib,
        usd_per_hour=row.usd_per_hour,
        spot_usd_per_hour=row.spot_usd_per_hour,
        price_as_of=row.price_as_of,
        source=row.source,
    )


def _sagemaker_prices(fetch: Fetch, regions: tuple[str, ...]) -> list[PriceRow]:
    rows: list[PriceRow] = []
    for region in regions:
        url = AWS_OFFER_URL.format(region=region)
        rows.extend(parse_aws_price_list(fetch(url), source=f"AWS Price List bulk API {url}"))
    return rows


def _azure_prices(fetch: Fetch, regions: tuple[str, ...], skus: list[str], today: date) -> list[PriceRow]:
    names = " or ".join(f"armSkuName eq '{sku}'" for sku in skus)
    pages = []
    for region in regions:
        query = f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{region}' and ({names})"
        url: str | None = AZURE_PRICES_URL + "?" + urllib.parse.urlencode({"$filter": query})
        for _ in range(MAX_PAGES):
            if not url:
                break
            page = fetch(url)
            pages.append(page)
            url = page.get("NextPageLink") if isinstance(page, Mapping) else None
    return parse_azure_retail_prices(pages, as_of=today, source=f"Azure Retail Prices API {AZURE_PRICES_URL}")


def _vertex_prices(
    fetch: Fetch, regions: tuple[str, ...], facts: dict[str, Offer], today: date, environ: Mapping[str, str]
) -> list[PriceRow]:
    key = next((environ[name] for name in GCP_KEY_VARIABLES if environ.get(name)), None)
    if key is None:
        raise CatalogError(
            "Refreshing Vertex AI prices needs a Google Cloud API key: the Cloud Billing Catalog API "
            "does not answer without one. The bundled Vertex prices stay in use.",
            hint="Create an API key in the Google Cloud console (APIs & Services > Credentials), enable the "
            "Cloud Billing API, then set CLOUDTRAIN_GCP_API_KEY (or GOOGLE_API_KEY).",
        )
    base = GCP_SKUS_URL.format(service=VERTEX_SERVICE_ID)
    pages, token = [], ""
    for _ in range(MAX_PAGES):
        params = {"key": key, "currencyCode": "USD", "pageSize": "5000"}
        if token:
            params["pageToken"] = token
        page = fetch(base + "?" + urllib.parse.urlencode(params))
        pages.append(page)
        token = page.get("nextPageToken", "") if isinstance(page, Mapping) else ""
        if not token:
            break
    rates = [rate for rate in parse_gcp_billing_skus(pages) if rate.region in regions]
    fact_table = {
        name: {"vcpus": o.vcpus, "memory_gib": o.memory_gib, "accelerator_count": o.accelerator_count}
        for name, o in facts.items()
    }
    return vertex_instance_prices(rates, fact_table, as_of=today, source=f"GCP Cloud Billing Catalog API {base}")


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
