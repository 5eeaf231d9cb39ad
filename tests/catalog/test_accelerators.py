from __future__ import annotations

import pytest

from cloudtrain.catalog import KNOWN_ACCELERATORS, normalize_accelerator
from cloudtrain.errors import CatalogError


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("a100", "A100"),
        ("A100-40GB", "A100"),
        ("NVIDIA_A100_80GB", "A100-80GB"),
        ("a100-80gb", "A100-80GB"),
        ("nvidia-tesla-t4", "T4"),
        ("NVIDIA_TESLA_T4", "T4"),
        ("t4", "T4"),
        ("h100", "H100"),
        ("NVIDIA_H100_80GB", "H100"),
        ("a10g", "A10G"),
        ("A10", "A10"),
        ("NVIDIA_L4", "L4"),
        ("NVIDIA_TESLA_V100", "V100"),
        ("trn1", "Trainium"),
        ("Trainium", "Trainium"),
        ("  H200 ", "H200"),
    ],
)
def test_aliases_map_to_the_neutral_name(alias, expected):
    assert normalize_accelerator(alias) == expected


def test_every_known_name_is_its_own_alias():
    for name in KNOWN_ACCELERATORS:
        assert normalize_accelerator(name) == name
        assert normalize_accelerator(name.lower()) == name


def test_unknown_accelerator_lists_the_known_names():
    with pytest.raises(CatalogError) as caught:
        normalize_accelerator("rtx4090")
    assert "rtx4090" in caught.value.message
    assert "A100-80GB" in caught.value.hint and "Trainium" in caught.value.hint
    assert caught.value.exit_code == 2
