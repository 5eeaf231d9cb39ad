"""Resolving a spec into a Plan: where and how one submission of a job will run.

``make_plan`` is a pure function of the spec, the catalog, the backend's settings and the two
values that make a submission unique (the time and a random token, both passed in by the caller). It
picks the offer (instance type, region, prices) for a backend whose machines come from the catalog,
the number of worker processes per node and the job name, and computes the cost upper bound. A
backend without catalog offers (the local executor, a plugin) gets a plan with ``offer=None``.
Backends render Plans; they never look at the catalog themselves. Which backends exist is the
registry's business (the runner asks it), not this module's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import CatalogError
from cloudtrain.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.catalog import Catalog, Offer
    from cloudtrain.cost import CostEstimate


@dataclass(frozen=True)
class Plan:
    """Everything a provider needs to render one submission of a job."""

    spec: JobSpec
    cloud: str
    job_name: str
    submission_token: str
    created_at: datetime
    nodes: int
    processes_per_node: int
    region: str | None = None
    offer: "Offer | None" = None
    spot: bool = False
    estimate: "CostEstimate | None" = None
    settings: dict[str, Any] = field(default_factory=dict)  # the backend's validated section, merged from config layers
    missing_settings: tuple[str, ...] = ()  # a dry run's: required settings shown as placeholders, not yet set
    #: ``resources.pools``: (pool name, nodes, offer) of each pool, the first one's offer is ``offer``
    pools: tuple[tuple[str, int, "Offer"], ...] = ()

    @property
    def instance_type(self) -> str | None:
        return self.offer.instance_type if self.offer else None

    @property
    def max_runtime_seconds(self) -> int | None:
        runtime = self.spec.max_runtime
        return int(runtime.total_seconds()) if runtime else None

    @property
    def max_wait_seconds(self) -> int | None:
        """For spot jobs: the longest total time including waits (default twice the run time)."""
        if not self.spot:
            return None
        if self.spec.spot.max_wait:
            return int(self.spec.spot.max_wait.total_seconds())
        runtime = self.max_runtime_seconds
        return 2 * runtime if runtime else None

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


def new_submission(now: datetime | None = None) -> tuple[datetime, str]:
    """The time and random token that make one submission unique (the only impure inputs of a plan)."""
    return (now or datetime.now(timezone.utc)).replace(microsecond=0), secrets.token_hex(3)


def job_name(spec: JobSpec, created_at: datetime, token: str) -> str:
    """``<spec name>-<yyyymmdd-hhmmss>-<token>``: at most 63 characters, valid on every cloud."""
    return f"{spec.name}-{created_at:%Y%m%d-%H%M%S}-{token[:4]}"


def processes_per_node(spec: JobSpec, accelerator_count: int | None = None) -> int:
    """Worker processes per node: one per GPU under torchrun, mpi and deepspeed with ``auto`` (one on
    a CPU-only node), the spec's count when given; one for ``none`` and ``tensorflow`` (one task per
    node, whose strategy uses all of the node's GPUs)."""
    if spec.distribution.type in ("none", "tensorflow"):
        return 1
    wanted = spec.distribution.processes_per_node
    if wanted != "auto":
        return int(wanted)
    count = accelerator_count if accelerator_count is not None else (spec.resources.accelerator.count if spec.resources.accelerator else 0)
    return max(1, count)


def make_plan(
    spec: JobSpec,
    cloud: str,
    *,
    catalog: "Catalog | None" = None,
    settings: dict[str, Any] | None = None,
    region: str | None = None,
    spot: bool | None = None,
    created_at: datetime | None = None,
    token: str | None = None,
) -> Plan:
    """Resolve ``spec`` for one backend. ``catalog``: where the backend's offers come from (None for
    a backend without catalog offers); ``settings``: the backend's section (the spec's by default);
    ``region`` and ``spot`` override the spec when given."""
    from cloudtrain.catalog.choice import choose_offer, choose_pool_offers
    from cloudtrain.cost import estimate_offer, estimate_pools

    if created_at is None or token is None:
        created_at, token = new_submission(created_at)
    use_spot = bool(spec.spot.enabled if spot is None else spot)
    settings = spec.cloud_settings(cloud) if settings is None else settings
    common = dict(spec=spec, cloud=cloud, job_name=job_name(spec, created_at, token), submission_token=token,
                  created_at=created_at, nodes=spec.resources.nodes, spot=use_spot, settings=settings)
    if spec.resources.pools:
        common["nodes"] = sum(pool.nodes for pool in spec.resources.pools)
    if catalog is None:
        return Plan(**common, processes_per_node=processes_per_node(spec), region=region)
    if spec.resources.pools:  # each pool's offer, in the first pool's region
        first = spec.resources.pools[0]
        offers = choose_pool_offers(spec, cloud, catalog, region)
        first_spec = spec.model_copy(update={"resources": spec.resources.pool_resources(first)})
        offer = offers[0][2]
        return Plan(**common, processes_per_node=processes_per_node(first_spec, offer.accelerator_count), region=offer.region,
                    offer=offer, pools=tuple(offers), estimate=estimate_pools(spec, offers, spot=use_spot))
    offer = choose_offer(spec, cloud, catalog, region)
    return Plan(**common, processes_per_node=processes_per_node(spec, offer.accelerator_count), region=offer.region,
                offer=offer, estimate=estimate_offer(spec, offer, spot=use_spot))


def cheapest_cloud(spec: JobSpec, catalog: "Catalog", clouds: dict[str, str | None] | None = None,
                   spot: bool | None = None) -> str:
    """The cloud whose cheapest matching offer has the lowest upper-bound (or hourly) cost;
    ``clouds``: the backends to compare, each with its region (None: any; default: the catalog's)."""
    from cloudtrain.cost import estimate_spec

    estimates = estimate_spec(spec, catalog, clouds=clouds, spot=spot).offers
    if not estimates:
        raise CatalogError("no cloud has an offer that satisfies this spec's resources", "loosen resources, or see `cloudtrain catalog`")
    return estimates[0].cloud
