"""The bundled catalog: every row complete, sane, sourced and dated; the build is reproducible."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import pytest

from cloudtrain.catalog import CLOUDS, FIELDS, load_catalog
from cloudtrain.catalog.loading import bundled_text

ROOT = Path(__file__).resolve().parents[2]

# Regions with at least one sourced price. Vertex has one: only us-central1 custom-training prices
# (n1-standard-4, a3-highgpu-8g) could be sourced (see scripts/build_catalog.py); raise this when more are.
MIN_REGIONS = {"sagemaker": 3, "azureml": 3, "vertex": 1}


def test_files_have_the_exact_header_and_rows():
    for cloud in CLOUDS:
        lines = bundled_text(cloud).splitlines()
        assert lines[0] == ",".join(FIELDS)
        assert len(lines) > 1, cloud


def test_every_offer_is_complete_and_sane():
    catalog = load_catalog()
    assert {o.cloud for o in catalog.offers} == set(CLOUDS)
    for offer in catalog.offers:
        label = f"{offer.cloud}/{offer.region}/{offer.instance_type}"
        assert offer.vcpus > 0 and offer.memory_gib > 0, label
        if not offer.priced:
            assert offer.price_origin == "no sourced price" and offer.price_as_of is None and offer.source is None, label
            continue
        assert offer.usd_per_hour > 0, label
        assert offer.spot_usd_per_hour is None or 0 < offer.spot_usd_per_hour < offer.usd_per_hour, label
        assert offer.vcpus > 0 and offer.memory_gib > 0, label
        if offer.accelerator is None:
            assert offer.accelerator_count == 0 and offer.accelerator_memory_gib is None, label
        else:
            assert offer.accelerator_count > 0 and (offer.accelerator_memory_gib or 1) > 0, label
        assert offer.source.strip(), label
        assert date(2020, 1, 1) <= offer.price_as_of <= date(2026, 11, 25), label
        d = offer.to_dict()
        assert list(d) == list(FIELDS) and d["price_as_of"] == offer.price_as_of.isoformat()


def test_no_duplicate_offers_and_enough_regions():
    catalog = load_catalog()
    keys = [(o.cloud, o.region, o.instance_type) for o in catalog.offers]
    assert len(keys) == len(set(keys))
    for cloud, minimum in MIN_REGIONS.items():
        assert len(catalog.regions(cloud)) >= minimum, cloud


def test_sagemaker_has_no_invented_spot_prices():
    assert all(o.spot_usd_per_hour is None for o in load_catalog().offers if o.cloud == "sagemaker")


def test_sagemaker_instances_are_ml_types_with_sdk_facts():
    offers = {o.instance_type: o for o in load_catalog().offers if o.cloud == "sagemaker" and o.region == "us-east-1"}
    assert all(name.startswith("ml.") for name in offers)
    assert (offers["ml.g4dn.xlarge"].accelerator, offers["ml.g4dn.xlarge"].accelerator_count) == ("T4", 1)
    assert offers["ml.g5.2xlarge"].accelerator_memory_gib == 24.0  # from SageMaker's instance_gpu_info.json
    assert (offers["ml.m5.xlarge"].vcpus, offers["ml.m5.xlarge"].memory_gib) == (4, 16.0)


@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None or importlib.util.find_spec("moto") is None,
    reason="the build script reads data files shipped by sagemaker and moto",
)
def test_build_script_reproduces_the_bundled_files():
    spec = importlib.util.spec_from_file_location("build_catalog", ROOT / "scripts" / "build_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from cloudtrain.catalog.offers import write_offers

    for cloud in CLOUDS:
        first = write_offers(module.build_offers(cloud))
        assert first == write_offers(module.build_offers(cloud))
        assert first == bundled_text(cloud), f"run scripts/build_catalog.py ({cloud} is stale)"


def test_the_big_training_machines_have_sourced_prices_and_sdk_facts():
    offers = {o.instance_type: o for o in load_catalog().offers if o.cloud == "sagemaker" and o.region == "us-east-1"}
    for name, accelerator, count in [("ml.p4d.24xlarge", "A100", 8), ("ml.p4de.24xlarge", "A100-80GB", 8),
                                     ("ml.p5.48xlarge", "H100", 8), ("ml.trn1.32xlarge", "Trainium", 16)]:
        offer = offers[name]
        assert offer.priced and offer.source and offer.price_as_of, name
        assert (offer.accelerator, offer.accelerator_count) == (accelerator, count), name
