"""cloudtrain prices refresh: join with bundled facts, atomic write, failures leave the cache intact."""

from __future__ import annotations

import urllib.error
from datetime import date

import pytest

from cloudtrain.catalog import load_catalog
from cloudtrain.catalog.refresh import refresh
from cloudtrain.errors import CatalogError

from .conftest import load_fixture

AWS = load_fixture("aws_sagemaker_us-east-1.json")


def aws_fetch(url):
    assert url.startswith("https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/")
    return AWS  # every region answers with the us-east-1 fixture; rows keep their own regionCode


def test_sagemaker_refresh_writes_the_cache_and_summarises(tmp_path):
    summary = refresh("sagemaker", tmp_path, fetch=aws_fetch, regions=("us-east-1",))
    assert summary.rows_per_region == {"us-east-1": 2}  # ml.p5.48xlarge: unknown facts and $0 -> dropped
    assert summary.path == tmp_path / "sagemaker.csv"
    catalog = load_catalog(tmp_path)
    offers = {o.instance_type: o for o in catalog.offers if o.cloud == "sagemaker" and o.priced}
    assert set(offers) == {"ml.g5.xlarge", "ml.m5.xlarge"}
    assert offers["ml.g5.xlarge"].accelerator == "A10G" and offers["ml.g5.xlarge"].price_as_of == date(2026, 9, 24)
    from cloudtrain.catalog.parsed import FILE as PARSED

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sagemaker.csv", PARSED])  # no temporary file left behind


def test_azure_refresh_follows_next_page_links(tmp_path):
    seen = []

    def fetch(url):
        seen.append(url)
        if "$skip=100" in url:
            return load_fixture("azure_retail_prices_page2.json")
        return load_fixture("azure_retail_prices_page1.json") if len(seen) == 1 else {"Items": [], "NextPageLink": None}

    summary = refresh("azureml", tmp_path, fetch=fetch, regions=("eastus", "westus2"), today=date(2026, 11, 26))
    assert summary.rows_per_region == {"eastus": 1, "westus2": 1}
    assert "armRegionName+eq+%27eastus%27" in seen[0]
    offer = next(o for o in load_catalog(tmp_path).offers if o.instance_type == "Standard_NC4as_T4_v3")
    assert (offer.usd_per_hour, offer.spot_usd_per_hour, offer.price_as_of) == (0.526, 0.0627, date(2026, 11, 26))


def test_vertex_refresh_needs_an_api_key(tmp_path):
    with pytest.raises(CatalogError, match="API key") as caught:
        refresh("vertex", tmp_path, fetch=lambda url: pytest.fail("must not fetch"), environ={})
    assert "CLOUDTRAIN_GCP_API_KEY" in caught.value.hint
    assert not (tmp_path / "vertex.csv").exists()


def test_vertex_refresh_with_key(tmp_path):
    urls = []

    def fetch(url):
        urls.append(url)
        return load_fixture("gcp_vertex_skus.json")

    summary = refresh("vertex", tmp_path, fetch=fetch, environ={"GOOGLE_API_KEY": "k"}, today=date(2026, 11, 26))
    assert summary.rows_per_region == {"us-central1": 1}
    assert "key=k" in urls[0]


def test_failed_parse_leaves_the_old_cache_intact(tmp_path):
    refresh("sagemaker", tmp_path, fetch=aws_fetch, regions=("us-east-1",))
    before = (tmp_path / "sagemaker.csv").read_bytes()
    with pytest.raises(CatalogError, match="unexpected shape"):
        refresh("sagemaker", tmp_path, fetch=lambda url: {"products": {}}, regions=("us-east-1",))
    assert (tmp_path / "sagemaker.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sagemaker.csv"]


def test_no_known_rows_writes_nothing(tmp_path):
    empty = {"publicationDate": "2026-09-24T00:00:00Z", "products": {}, "terms": {"OnDemand": {}}}
    with pytest.raises(CatalogError, match="no price"):
        refresh("sagemaker", tmp_path, fetch=lambda url: empty, regions=("us-east-1",))
    assert not (tmp_path / "sagemaker.csv").exists()


def test_failed_write_leaves_no_partial_file(tmp_path):
    (tmp_path / "sagemaker.csv").mkdir()  # the target cannot be replaced
    with pytest.raises(OSError):
        refresh("sagemaker", tmp_path, fetch=aws_fetch, regions=("us-east-1",))
    assert [p.name for p in tmp_path.iterdir()] == ["sagemaker.csv"]  # the temporary file was removed
    assert (tmp_path / "sagemaker.csv").is_dir()


def test_offline_says_the_api_is_unreachable(tmp_path):
    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(CatalogError) as caught:
        refresh("azureml", tmp_path, fetch=offline, regions=("eastus",))
    assert "unreachable" in caught.value.message and "bundled" in caught.value.message
    assert not (tmp_path / "azureml.csv").exists()


def test_unknown_cloud(tmp_path):
    with pytest.raises(CatalogError, match="Unknown cloud"):
        refresh("gcp", tmp_path, fetch=aws_fetch)
