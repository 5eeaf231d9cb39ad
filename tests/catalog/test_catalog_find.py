"""Catalog.find / explain_no_match / filter on a small hand-made catalog (and one real query)."""

from __future__ import annotations

import pytest

from cloudtrain.catalog import load_catalog
from cloudtrain.catalog.query import Catalog
from cloudtrain.errors import CatalogError

from .conftest import make_offer


@pytest.fixture()
def catalog() -> Catalog:
    return Catalog(
        offers=[
            make_offer("Standard_D8s", 0.40, vcpus=8, memory=32),
            make_offer("Standard_D64s", 3.00, vcpus=64, memory=256),
            make_offer("Big_A100x8", 27.0, accelerator="A100", count=8, vcpus=96, memory=900),
            make_offer("Small_A100x1", 3.60, accelerator="A100", count=1, vcpus=24, memory=220),
            make_offer("Other_A100x1", 3.60, accelerator="A100", count=1, vcpus=24, memory=220),
            make_offer("Small_A100x1", 4.40, region="westus2", accelerator="A100", count=1, vcpus=24, memory=220),
            make_offer("T4x1", 0.52, accelerator="T4", count=1, vcpus=4, memory=28),
            make_offer("ml.g5.xlarge", 1.41, cloud="sagemaker", region="us-east-1", accelerator="A10G", count=1),
        ]
    )


def names(offers):
    return [(o.instance_type, o.region) for o in offers]


def test_cheapest_first_with_deterministic_ties(catalog):
    offers = catalog.find("azureml", accelerator="a100")
    assert names(offers) == [
        ("Other_A100x1", "eastus"),
        ("Small_A100x1", "eastus"),
        ("Small_A100x1", "westus2"),
        ("Big_A100x8", "eastus"),
    ]


def test_accelerator_count_is_exact_per_node(catalog):
    assert names(catalog.find("azureml", accelerator="A100", accelerator_count=8)) == [("Big_A100x8", "eastus")]
    assert catalog.find("azureml", accelerator="A100", accelerator_count=2) == []


def test_no_accelerator_means_any_offer_including_cpu(catalog):
    offers = catalog.find("azureml", region="eastus")
    assert names(offers)[0] == ("Standard_D8s", "eastus")
    assert len(offers) == 6
    assert [o.instance_type for o in catalog.find("azureml", accelerator_count=0)] == ["Standard_D8s", "Standard_D64s"]


def test_minimum_size_filters(catalog):
    offers = catalog.find("azureml", min_vcpus=32, min_memory_gib=250)
    assert names(offers) == [("Standard_D64s", "eastus"), ("Big_A100x8", "eastus")]


def test_instance_type_wins_but_region_applies(catalog):
    offers = catalog.find("azureml", instance_type="Small_A100x1", accelerator="T4", accelerator_count=4, min_vcpus=999)
    assert names(offers) == [("Small_A100x1", "eastus"), ("Small_A100x1", "westus2")]
    assert names(catalog.find("azureml", instance_type="Small_A100x1", region="westus2")) == [("Small_A100x1", "westus2")]
    assert catalog.find("azureml", instance_type="Small_A100x1", region="northeurope") == []


def test_empty_match_is_an_empty_list_not_an_error(catalog):
    assert catalog.find("sagemaker", accelerator="H100") == []


def test_explain_lists_the_counts_and_instance_types_that_exist(catalog):
    error = catalog.explain_no_match("azureml", accelerator="A100", accelerator_count=4)
    assert isinstance(error, CatalogError)
    assert "exactly 4 x A100" in error.message
    assert "1, 8" in error.hint and "Big_A100x8 (8x)" in error.hint and "Small_A100x1 (1x)" in error.hint


def test_explain_unknown_accelerator_on_cloud_lists_accelerators(catalog):
    error = catalog.explain_no_match("sagemaker", accelerator="H100")
    assert "no H100" in error.message and "A10G" in error.hint


def test_explain_lists_regions(catalog):
    error = catalog.explain_no_match("azureml", region="northeurope")
    assert "eastus" in error.hint and "westus2" in error.hint
    error = catalog.explain_no_match("azureml", accelerator="T4", region="westus2")
    assert "eastus" in error.hint


def test_explain_instance_types(catalog):
    assert "Standard_D8s" in catalog.explain_no_match("azureml", instance_type="Nope_v9").hint
    error = catalog.explain_no_match("azureml", instance_type="T4x1", region="westus2")
    assert "eastus" in error.hint


def test_explain_sizes(catalog):
    error = catalog.explain_no_match("azureml", accelerator="T4", min_vcpus=64)
    assert "4 vCPUs" in error.hint


def test_cheapest_raises_the_explanation(catalog):
    assert catalog.cheapest("azureml", accelerator="t4").instance_type == "T4x1"
    with pytest.raises(CatalogError, match="exactly 2 x A100"):
        catalog.cheapest("azureml", accelerator="A100", accelerator_count=2)


def test_unknown_cloud_and_accelerator_raise(catalog):
    with pytest.raises(CatalogError, match="Unknown cloud"):
        catalog.find("gcp")
    with pytest.raises(CatalogError, match="Unknown accelerator"):
        catalog.find("azureml", accelerator="tpu-v9")


def test_filter_listing(catalog):
    assert {o.instance_type for o in catalog.filter(cloud="azureml", gpu=False)} == {"Standard_D8s", "Standard_D64s"}
    assert all(o.has_accelerator for o in catalog.filter(gpu=True))
    assert [o.cloud for o in catalog.filter(region="us-east-1")] == ["sagemaker"]
    assert len(catalog.filter()) == len(catalog.offers)
    assert catalog.regions("azureml") == ["eastus", "westus2"]
    assert catalog.accelerators() == ["A100", "A10G", "T4"]


def test_real_catalog_answers_a_typical_request():
    catalog = load_catalog()
    offers = catalog.find("azureml", accelerator="A100-80GB", accelerator_count=1)
    assert offers and all(o.accelerator_count == 1 and o.accelerator == "A100-80GB" for o in offers)
    assert [o.usd_per_hour for o in offers] == sorted(o.usd_per_hour for o in offers)
    assert catalog.find("sagemaker", instance_type="ml.g5.xlarge", region="us-east-1")[0].usd_per_hour == 1.408
