"""Cost estimates: a pure function of a spec (or plan) and catalog offers.

The upper bound of a job's cost is ``$/h per node x nodes x max_runtime``: managed training bills
each node for the job's run time, and ``max_runtime`` is where the cloud stops it (for
``resources.pools``, the sum over the pools: :func:`estimate_pools`). When the spec
asks for spot capacity and the cloud publishes a spot price, the bound uses it, and the on-demand
figure is kept beside it. Without ``max_runtime`` there is no upper bound, only an hourly figure.
An offer without a sourced price has no figures at all (``priced`` is False): it is shown as
such, ranked after the priced ones, and a ``budget`` cannot be proven for it, so it is refused
unless the user gives a price (``cloudtrain prices import``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from cloudtrain.errors import BudgetExceededError, CatalogError
from cloudtrain.spec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.catalog import Catalog, Offer

STALE_AFTER_DAYS = 90


@dataclass(frozen=True)
class CostEstimate:
    """The figures for one offer and one job; hourly figures are for all nodes together."""

    cloud: str
    region: str
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    nodes: int
    usd_per_hour_per_node: float | None
    spot_usd_per_hour_per_node: float | None
    max_runtime_hours: float | None
    spot: bool  # the spot price is the one the bound uses
    price_as_of: date | None
    source: str | None
    price_origin: str = "catalog"  # "catalog", "your price" or "no sourced price"

    @property
    def priced(self) -> bool:
        return self.usd_per_hour_per_node is not None

    @property
    def usd_per_hour(self) -> float | None:
        if self.usd_per_hour_per_node is None:
            return None
        return round(self.usd_per_hour_per_node * self.nodes, 6)

    @property
    def spot_usd_per_hour(self) -> float | None:
        if self.spot_usd_per_hour_per_node is None:
            return None
        return round(self.spot_usd_per_hour_per_node * self.nodes, 6)

    @property
    def effective_usd_per_hour(self) -> float | None:
        return self.spot_usd_per_hour if self.spot and self.spot_usd_per_hour is not None else self.usd_per_hour

    @property
    def exact_max_total_usd(self) -> float | None:
        """$/h x max_runtime, not rounded to cents (what a budget, or a sweep's trials, are compared with)."""
        hourly = self.effective_usd_per_hour
        if self.max_runtime_hours is None or hourly is None:
            return None
        return hourly * self.max_runtime_hours

    @property
    def max_total_usd(self) -> float | None:
        exact = self.exact_max_total_usd
        return None if exact is None else round(exact, 2)

    @property
    def on_demand_max_total_usd(self) -> float | None:
        if self.max_runtime_hours is None or self.usd_per_hour is None:
            return None
        return round(self.usd_per_hour * self.max_runtime_hours, 2)

    def age_days(self, today: date) -> int:
        return (today - self.price_as_of).days if self.price_as_of else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "region": self.region,
            "instance_type": self.instance_type,
            "accelerator": self.accelerator,
            "accelerator_count": self.accelerator_count,
            "nodes": self.nodes,
            "usd_per_hour": self.usd_per_hour,
            "spot_usd_per_hour": self.spot_usd_per_hour,
            "max_total_usd": self.max_total_usd,
            "spot": self.spot,
            "price_as_of": self.price_as_of.isoformat() if self.price_as_of else None,
            "price_origin": self.price_origin,
        }


@dataclass(frozen=True)
class SpecEstimate:
    """Estimates for one spec on every cloud that can run it, cheapest first."""

    job: str
    nodes: int
    max_runtime_hours: float | None
    offers: list[CostEstimate]
    unavailable: dict[str, str] = field(default_factory=dict)  # cloud -> why no offer matched
    unpriced: dict[str, str] = field(default_factory=dict)  # backend -> why it has no sourced price

    @property
    def cheapest(self) -> CostEstimate | None:
        return self.offers[0] if self.offers else None

    def __iter__(self) -> Iterator[CostEstimate]:
        return iter(self.offers)

    def __len__(self) -> int:
        return len(self.offers)

    def stale(self, today: date) -> list[CostEstimate]:
        return [o for o in self.offers if o.priced and o.price_origin != "your price" and o.age_days(today) > STALE_AFTER_DAYS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "nodes": self.nodes,
            "max_runtime_hours": self.max_runtime_hours,
            "offers": [o.to_dict() for o in self.offers],
            "cheapest": self.cheapest.to_dict() if self.cheapest else None,
            "unavailable": dict(self.unavailable),
            "unpriced": dict(self.unpriced),
        }


def runtime_hours(spec: JobSpec) -> float | None:
    return spec.max_runtime.total_seconds() / 3600 if spec.max_runtime else None


def estimate_offer(spec: JobSpec, offer: "Offer", spot: bool | None = None) -> CostEstimate:
    wants_spot = spec.spot.enabled if spot is None else spot
    return CostEstimate(
        cloud=offer.cloud,
        region=offer.region,
        instance_type=offer.instance_type,
        accelerator=offer.accelerator,
        accelerator_count=offer.accelerator_count,
        nodes=spec.resources.nodes,
        usd_per_hour_per_node=offer.usd_per_hour,
        spot_usd_per_hour_per_node=offer.spot_usd_per_hour,
        max_runtime_hours=runtime_hours(spec),
        spot=bool(wants_spot and offer.spot_usd_per_hour is not None),
        price_as_of=offer.price_as_of,
        source=offer.source,
        price_origin=offer.price_origin,
    )


def estimate_pools(spec: JobSpec, pools: "Sequence[tuple[str, int, Offer]]", spot: bool | None = None) -> CostEstimate:
    """One estimate for a cluster of pools (``resources.pools``): the hourly figures are the pools'
    sums (nodes x $/h of each), so the bound and the budget cover the whole cluster; a pool without
    a sourced price (or spot price) leaves the cluster's without one."""
    if len(pools) == 1:
        _, nodes, offer = pools[0]
        return replace(estimate_offer(spec, offer, spot), nodes=nodes)
    nodes = sum(count for _, count, _ in pools)

    def per_node(price: Callable[["Offer"], float | None]) -> float | None:
        prices = [(count, price(offer)) for _, count, offer in pools]
        if any(value is None for _, value in prices):
            return None
        return sum(count * (value or 0.0) for count, value in prices) / nodes

    wants_spot = spec.spot.enabled if spot is None else spot
    spot_price = per_node(lambda offer: offer.spot_usd_per_hour)
    first = pools[0][2]
    dates = [offer.price_as_of for _, _, offer in pools if offer.price_as_of]
    origins = {offer.price_origin for _, _, offer in pools}
    return CostEstimate(
        cloud=first.cloud, region=first.region,
        instance_type="pools(" + ", ".join(f"{name} {count} x {offer.instance_type}" for name, count, offer in pools) + ")",
        accelerator=first.accelerator, accelerator_count=first.accelerator_count, nodes=nodes,
        usd_per_hour_per_node=per_node(lambda offer: offer.usd_per_hour), spot_usd_per_hour_per_node=spot_price,
        max_runtime_hours=runtime_hours(spec), spot=bool(wants_spot and spot_price is not None),
        price_as_of=min(dates) if dates else None,
        source="; ".join(dict.fromkeys(offer.source for _, _, offer in pools if offer.source)) or None,
        # a cluster with any catalog price is "catalog", so its age is still checked (estimate warns of stale prices)
        price_origin="no sourced price" if "no sourced price" in origins else ("catalog" if "catalog" in origins else "your price"),
    )


def _rank_key(estimate: CostEstimate) -> tuple[bool, float, str]:
    figure = estimate.max_total_usd if estimate.max_total_usd is not None else estimate.effective_usd_per_hour
    return (figure is None, figure or 0.0, estimate.cloud)


def estimate_spec(
    spec: JobSpec,
    catalog: "Catalog",
    *,
    clouds: Mapping[str, str | None] | Iterable[str] | None = None,
    region: str | None = None,
    unpriced: Mapping[str, str] | None = None,
    spot: bool | None = None,
) -> SpecEstimate:
    """The cheapest matching offer on each cloud, ranked by upper-bound (else hourly) cost.

    ``clouds``: the backends whose offers are in the catalog (all the catalog's clouds by default),
    as names (priced in ``region``, else the cheapest region) or as a map to each one's region.
    ``unpriced``: backends shown without a price, and why."""
    from cloudtrain.catalog import CLOUDS, normalize_accelerator
    from cloudtrain.catalog.choice import choose_offer, choose_pool_offers

    if not isinstance(clouds, Mapping):
        clouds = {name: region for name in (CLOUDS if clouds is None else clouds)}
    if spec.resources.accelerator:
        normalize_accelerator(spec.resources.accelerator.name)  # an unknown name is an error on every cloud
    offers, unavailable = [], {}
    for cloud, cloud_region in clouds.items():
        try:
            if spec.resources.pools:
                offers.append(estimate_pools(spec, choose_pool_offers(spec, cloud, catalog, cloud_region), spot))
            else:
                offers.append(estimate_offer(spec, choose_offer(spec, cloud, catalog, cloud_region), spot))
        except CatalogError as error:
            unavailable[cloud] = error.message
    offers.sort(key=_rank_key)
    nodes = sum(pool.nodes for pool in spec.resources.pools) if spec.resources.pools else spec.resources.nodes
    return SpecEstimate(job=spec.name, nodes=nodes, max_runtime_hours=runtime_hours(spec),
                        offers=offers, unavailable=unavailable, unpriced=dict(unpriced or {}))


def usd(amount: float) -> str:
    """Dollars as a bound or a budget is shown: cents, or the first digits of an amount below a cent
    (a budget of $0.001 is not "$0.00")."""
    if 0 < abs(amount) < 0.01:
        text = f"{amount:.6f}".rstrip("0")
        return "$" + (f"{amount:.1e}" if text.endswith(".") else text)
    return f"${amount:,.2f}"


def check_budget(spec: JobSpec, estimate: CostEstimate | None) -> None:
    """Refuse a job whose upper-bound cost exceeds ``budget.max_usd`` (exit code 4)."""
    if spec.budget is None or estimate is None:
        return
    limit = spec.budget.max_usd
    if not estimate.priced:
        raise BudgetExceededError(
            f"budget.max_usd is {usd(limit)} but {estimate.instance_type} on {estimate.cloud} in {estimate.region} has no sourced "
            "price, so the job's cost bound cannot be proven; nothing was submitted",
            f"give your price for it (`cloudtrain prices import FILE`, a CSV with the catalog's columns), choose a priced "
            f"instance type or region (`cloudtrain catalog --cloud {estimate.cloud}`), or remove budget")
    exact = estimate.exact_max_total_usd  # not rounded to cents: a budget may be smaller
    if exact is None:
        raise BudgetExceededError(
            f"budget.max_usd is {usd(limit)} but the job has no max_runtime, so its cost has no upper bound "
            f"(${estimate.effective_usd_per_hour:,.2f}/h on {estimate.cloud} {estimate.instance_type} x {estimate.nodes})",
            "set max_runtime (e.g. max_runtime: 2h) so the cloud stops the job within budget",
        )
    if exact > limit + 1e-12:
        price = "spot" if estimate.spot else "on-demand"
        hours = estimate.max_runtime_hours or 0
        raise BudgetExceededError(
            f"the job could cost up to {usd(exact)} on {estimate.cloud} ({estimate.nodes} x {estimate.instance_type} at "
            f"${estimate.effective_usd_per_hour:,.2f}/h {price} for {hours:g} h), over budget.max_usd {usd(limit)}; nothing was submitted",
            "lower max_runtime or resources, enable spot, pick a cheaper cloud (--cloud cheapest), or raise budget.max_usd",
        )
