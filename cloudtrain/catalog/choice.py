"""Choosing a spec's offer on one cloud: an exact instance type, else the smallest machine
satisfying its resources. Used by planning and by estimates alike, so both always agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudtrain.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.catalog import Catalog, Offer


def choose_offer(spec: JobSpec, cloud: str, catalog: "Catalog", region: str | None = None) -> "Offer":
    """The offer on ``cloud`` (in ``region`` if given) for the spec's resources: an exact instance
    type, else the smallest adequate machine (CPU-only unless an accelerator is asked for), then
    the cheapest priced region of it (:meth:`Catalog.find`)."""
    from cloudtrain.catalog.accelerators import normalize_accelerator

    res = spec.resources
    accelerator = normalize_accelerator(res.accelerator.name) if res.accelerator else None
    return catalog.cheapest(
        cloud,
        region=region,
        accelerator=accelerator,
        accelerator_count=res.accelerator.count if res.accelerator else 0,  # no accelerator asked: a CPU machine
        min_vcpus=res.cpus,
        min_memory_gib=res.memory_gib,
        instance_type=res.instance_type.get(cloud),
    )


def choose_pool_offers(spec: JobSpec, cloud: str, catalog: "Catalog", region: str | None = None) -> list[tuple[str, int, "Offer"]]:
    """(name, nodes, offer) of each of ``resources.pools``, every pool in the first pool's region."""
    chosen: list[tuple[str, int, "Offer"]] = []
    for pool in spec.resources.pools:
        one_kind = spec.model_copy(update={"resources": spec.resources.pool_resources(pool)})
        chosen.append((pool.name, pool.nodes, choose_offer(one_kind, cloud, catalog, region or (chosen[0][2].region if chosen else None))))
    return chosen
