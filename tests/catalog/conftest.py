"""Shared helpers for the catalog tests: small hand-made offers and the recorded API fixtures."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from cloudtrain.catalog import clear_cache
from cloudtrain.catalog.offers import Offer

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_offer(instance_type: str, usd: float, *, cloud: str = "azureml", region: str = "eastus",
               accelerator: str | None = None, count: int = 0, vcpus: int = 8, memory: float = 32.0,
               spot: float | None = None) -> Offer:
    return Offer(
        cloud=cloud, region=region, instance_type=instance_type, accelerator=accelerator,
        accelerator_count=count, accelerator_memory_gib=(16.0 * count if accelerator else None),
        vcpus=vcpus, memory_gib=memory, usd_per_hour=usd, spot_usd_per_hour=spot,
        price_as_of=date(2026, 11, 25), source="test",
    )


@pytest.fixture(autouse=True)
def _fresh_catalog_cache():
    clear_cache()
    yield
    clear_cache()
