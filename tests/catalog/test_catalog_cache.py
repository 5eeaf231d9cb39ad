"""A user's cached <cloud>.csv overrides the bundled rows of that cloud when it is valid."""

from __future__ import annotations

from cloudtrain.catalog import load_catalog
from cloudtrain.catalog.offers import write_offers

from .conftest import make_offer


def test_valid_cache_file_replaces_that_cloud_only(tmp_path):
    cached = [make_offer("ml.only.cached", 9.99, cloud="sagemaker", region="eu-west-1")]
    (tmp_path / "sagemaker.csv").write_text(write_offers(cached), encoding="utf-8")
    catalog = load_catalog(tmp_path)
    sagemaker = [o for o in catalog.offers if o.cloud == "sagemaker"]
    assert [o.instance_type for o in sagemaker if o.priced] == ["ml.only.cached"]  # the machines stay, unpriced
    assert catalog.origins["sagemaker"].endswith("sagemaker.csv") and catalog.origins["azureml"] == "bundled"
    assert any(o.cloud == "azureml" for o in catalog.offers)


def test_invalid_cache_file_is_ignored_with_a_warning(tmp_path):
    (tmp_path / "azureml.csv").write_text("cloud,region\nazureml,eastus\n", encoding="utf-8")
    catalog = load_catalog(tmp_path)
    assert catalog.origins["azureml"] == "bundled"
    assert any("azureml" in warning for warning in catalog.warnings)
    assert any(o.instance_type == "Standard_NC4as_T4_v3" for o in catalog.offers)


def test_cache_with_spot_above_on_demand_is_rejected(tmp_path):
    text = write_offers([make_offer("X", 1.0)]).replace(",1.0,,", ",1.0,2.0,")
    (tmp_path / "azureml.csv").write_text(text, encoding="utf-8")
    assert load_catalog(tmp_path).origins["azureml"] == "bundled"


def test_load_is_cached_per_path(tmp_path):
    assert load_catalog() is load_catalog()
    assert load_catalog(tmp_path) is load_catalog(tmp_path)
    assert load_catalog(tmp_path) is not load_catalog()
