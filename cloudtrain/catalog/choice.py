"""Choosing a spec's offer on one cloud: the cheapest offer satisfying its resources (an exact
instance type wins). Used by planning and by estimates alike, so both always agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudtrain.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.catalog import Catalog, Offer


def choose_offer(spec: JobSpec, cloud: str, catalog: "Catalog", region: str | None = None) -> "Offer":
    """The cheapest offer on ``cloud`` (in ``region`` if given) satisfying the spec's resources."""
    from cloudtrain.catalog.accelerators import normalize_accelerator

    res = spec.resources
    accelerator = normalize_accelerator(res.accelerator.name) if res.accelerator else None
    return catalog.cheapest(
        cloud,
        region=region,
        accelerator=accelerator,
        accelerator_count=res.accelerator.count if res.accelerator else None,
        min_vcpus=res.cpus,
        min_memory_gib=res.memory_gib,
        instance_type=res.instance_type.get(cloud),
    )
