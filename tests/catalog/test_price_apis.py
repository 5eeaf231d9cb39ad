"""The pricing API parsers against small recorded responses in the APIs' documented shapes."""

from __future__ import annotations

from datetime import date

import pytest

from cloudtrain.catalog.price_apis import (
    PriceParseError,
    parse_aws_price_list,
    parse_azure_retail_prices,
    parse_gcp_billing_skus,
    vertex_instance_prices,
)

from .conftest import load_fixture


def test_aws_keeps_training_hours_only():
    rows = parse_aws_price_list(load_fixture("aws_sagemaker_us-east-1.json"))
    assert [(r.region, r.instance_type, r.usd_per_hour) for r in rows] == [
        ("us-east-1", "ml.g5.xlarge", 1.408),
        ("us-east-1", "ml.m5.xlarge", 0.23),
    ]
    assert all(r.spot_usd_per_hour is None and r.price_as_of == date(2026, 9, 24) for r in rows)
    assert "USE1-Train:ml.g5.xlarge" in rows[0].source


def test_aws_rejects_an_unexpected_shape():
    with pytest.raises(PriceParseError):
        parse_aws_price_list({"products": {}})


def test_azure_linux_on_demand_with_spot_and_paging():
    pages = [load_fixture("azure_retail_prices_page1.json"), load_fixture("azure_retail_prices_page2.json")]
    rows = parse_azure_retail_prices(pages, as_of=date(2026, 11, 25))
    assert [(r.region, r.instance_type, r.usd_per_hour, r.spot_usd_per_hour) for r in rows] == [
        ("eastus", "Standard_NC4as_T4_v3", 0.526, 0.0627),
        ("westus2", "Standard_NC24ads_A100_v4", 3.673, None),
    ]


def test_azure_rejects_a_page_without_items():
    with pytest.raises(PriceParseError):
        parse_azure_retail_prices([{"NextPageLink": None}], as_of=date(2026, 11, 25))


def test_gcp_component_rates_and_instance_sums():
    rates = parse_gcp_billing_skus(load_fixture("gcp_vertex_skus.json"))
    resources = {(r.region, r.resource) for r in rates}
    assert resources == {
        ("us-central1", "N1:core"),
        ("us-central1", "N1:ram"),
        ("us-central1", "NVIDIA_TESLA_T4"),
        ("europe-west4", "N1:core"),
    }
    facts = {
        "n1-standard-4": {"vcpus": 4, "memory_gib": 15.0, "accelerator_count": 0},
        "n1-standard-4+NVIDIA_TESLA_T4x2": {"vcpus": 4, "memory_gib": 15.0, "accelerator_count": 2},
    }
    rows = vertex_instance_prices(rates, facts, as_of=date(2026, 11, 25))
    prices = {(r.region, r.instance_type): r.usd_per_hour for r in rows}
    # europe-west4 lacks the RAM rate, so nothing is priced there
    assert prices == {
        ("us-central1", "n1-standard-4"): pytest.approx(4 * 0.043632 + 15 * 0.005001),
        ("us-central1", "n1-standard-4+NVIDIA_TESLA_T4x2"): pytest.approx(4 * 0.043632 + 15 * 0.005001 + 2 * 0.4025),
    }


def test_gcp_rejects_a_sku_without_prices():
    with pytest.raises(PriceParseError):
        parse_gcp_billing_skus({"skus": [{"description": "Custom Training: N1 Predefined Instance Core", "category": {}}]})
