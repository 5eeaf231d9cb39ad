"""Questions asked of the catalog: which offers satisfy a request, cheapest first.

``find`` answers with a list (empty when nothing matches) and never raises for "no match": the
caller decides. ``explain_no_match`` builds the :class:`CatalogError` a user sees, naming what
does exist (accelerator counts, instance types, regions) so the fix is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from cloudtrain.catalog.accelerators import normalize_accelerator
from cloudtrain.catalog.offers import CLOUDS, Offer
from cloudtrain.errors import CatalogError

if TYPE_CHECKING:  # pragma: no cover
    from datetime import date

_LIST_LIMIT = 12


def _listing(values: Iterable[object]) -> str:
    items = [str(v) for v in values]
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f" (and {len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else "")


def _price_order(offer: Offer) -> tuple[bool, float, str, str]:
    """Priced offers first, cheapest first; then unpriced ones, by name."""
    return (offer.usd_per_hour is None, offer.usd_per_hour or 0.0, offer.instance_type, offer.region)


from cloudtrain.catalog.machines import HOME_REGIONS  # noqa: E402  (the machine tables' home regions)


def _size_order(offer: Offer) -> tuple[object, ...]:
    """The smallest adequate machine first (accelerators, vCPUs, memory), then price; an unpriced
    machine in its cloud's home region before other regions."""
    unpriced, price, name, region = _price_order(offer)
    return (offer.accelerator_count, offer.vcpus, offer.memory_gib, unpriced, price,
            region != HOME_REGIONS.get(offer.cloud), name, region)


@dataclass(frozen=True)
class Catalog:
    """All offers, plus where each cloud's rows came from ("bundled" or a cache file path)."""

    offers: list[Offer]
    origins: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def with_prices(self, rows: Iterable[dict[str, object]], as_of: "date | None" = None) -> "Catalog":
        """This catalog with your own prices (``{cloud, region, instance_type, usd_per_hour,
        spot_usd_per_hour?}``, a config file's ``prices:``) over the catalog's, shown as "your price".
        A row naming a machine the catalog does not have is ignored, with a warning."""
        from dataclasses import replace
        from datetime import date as _date

        rows = list(rows)
        if not rows:
            return self
        today = as_of or _date.today()
        known = {(o.cloud, o.instance_type): o for o in self.offers}
        yours, warnings = {}, list(self.warnings)
        for row in rows:
            base = known.get((str(row["cloud"]), str(row["instance_type"])))
            if base is None:
                warnings.append(f"your price for {row['cloud']} {row['instance_type']} names no machine the catalog has; ignored")
                continue
            spot = row.get("spot_usd_per_hour")
            yours[(base.cloud, base.instance_type, str(row["region"]))] = replace(
                base, region=str(row["region"]), usd_per_hour=float(row["usd_per_hour"]),  # type: ignore[arg-type]
                spot_usd_per_hour=float(spot) if spot is not None else None, price_as_of=today,  # type: ignore[arg-type]
                source="your config's prices:", price_origin="your price")
        from cloudtrain.catalog.machines import MachineOffers

        if isinstance(self.offers, MachineOffers):
            offers: object = MachineOffers(self.offers.machines, [*self.offers.priced.values(), *yours.values()])
        else:
            offers = [o for o in self.offers if (o.cloud, o.instance_type, o.region) not in yours] + list(yours.values())
        return Catalog(offers=offers, origins=self.origins, warnings=tuple(warnings))  # type: ignore[arg-type]

    # -- listings -------------------------------------------------------------------------------
    def clouds(self) -> list[str]:
        return sorted({o.cloud for o in self.offers})

    def regions(self, cloud: str) -> list[str]:
        self._check_cloud(cloud)
        return sorted({o.region for o in self.offers if o.cloud == cloud})

    def accelerators(self, cloud: str | None = None) -> list[str]:
        return sorted(
            {o.accelerator for o in self.offers if o.accelerator and (cloud is None or o.cloud == cloud)}
        )

    def filter(self, cloud: str | None = None, region: str | None = None, gpu: bool | None = None) -> list[Offer]:
        """Offers for the ``cloudtrain catalog`` listing: ``gpu=True`` accelerated only, ``False`` CPU only."""
        if cloud is not None:
            self._check_cloud(cloud)
        chosen = [
            o
            for o in self.offers
            if (cloud is None or o.cloud == cloud)
            and (region is None or o.region == region)
            and (gpu is None or o.has_accelerator == gpu)
        ]
        return sorted(chosen, key=lambda o: (o.cloud, o.region, *_price_order(o)))

    # -- matching -------------------------------------------------------------------------------
    def find(
        self,
        cloud: str,
        *,
        region: str | None = None,
        accelerator: str | None = None,
        accelerator_count: int | None = None,
        min_vcpus: int | None = None,
        min_memory_gib: float | None = None,
        instance_type: str | None = None,
    ) -> list[Offer]:
        """Offers of ``cloud`` satisfying the request: the smallest adequate machine first (fewest
        accelerators, then vCPUs, then memory), and for machines of one size the priced ones
        first, cheapest on-demand price first; unpriced offers are kept, after the priced.

        ``accelerator_count`` is the exact number per node; with no ``accelerator`` it matches any
        accelerator with that count (0 means CPU-only). ``accelerator=None`` and no count means any
        offer, CPU-only ones included. An ``instance_type`` wins over the accelerator and size
        filters; ``region`` still applies. Ties are broken by instance type, then region.
        """
        self._check_cloud(cloud)
        wanted = normalize_accelerator(accelerator) if accelerator is not None and instance_type is None else None

        def fits(o: Offer) -> bool:
            if instance_type is not None:
                return o.instance_type == instance_type
            return ((wanted is None or o.accelerator == wanted)
                    and (accelerator_count is None or o.accelerator_count == accelerator_count)
                    and (min_vcpus is None or o.vcpus >= min_vcpus)
                    and (min_memory_gib is None or o.memory_gib >= min_memory_gib))

        candidates = getattr(self.offers, "candidates", None)
        if candidates is not None:  # the machine tables: expand only the machines that fit
            chosen = list(candidates(cloud, region, fits))
        else:
            chosen = [o for o in self.offers if o.cloud == cloud and (region is None or o.region == region) and fits(o)]
        return sorted(chosen, key=_size_order)

    def cheapest(self, cloud: str, **request: object) -> Offer:
        """The cheapest match, or the :class:`CatalogError` from :meth:`explain_no_match`."""
        offers = self.find(cloud, **request)  # type: ignore[arg-type]
        if not offers:
            raise self.explain_no_match(cloud, **request)  # type: ignore[arg-type]
        return offers[0]

    def explain_no_match(
        self,
        cloud: str,
        *,
        region: str | None = None,
        accelerator: str | None = None,
        accelerator_count: int | None = None,
        min_vcpus: int | None = None,
        min_memory_gib: float | None = None,
        instance_type: str | None = None,
    ) -> CatalogError:
        """A :class:`CatalogError` saying why nothing matches and listing what the catalog has."""
        if cloud not in CLOUDS:
            return CatalogError(f"Unknown cloud {cloud!r}.", hint=f"Choose one of: {', '.join(CLOUDS)}.")
        on_cloud = [o for o in self.offers if o.cloud == cloud]
        where = f" in {region}" if region else ""
        if not on_cloud:
            return CatalogError(
                f"The catalog has no offers for {cloud}.",
                hint="Run `cloudtrain prices refresh --cloud " + cloud + "` or reinstall cloudtrain.",
            )
        if region is not None and region not in {o.region for o in on_cloud}:
            return CatalogError(
                f"The catalog has no {cloud} offers in region {region!r}.",
                hint=f"Regions where {cloud} trains: {_listing(self.regions(cloud))}.",
            )
        if instance_type is not None:
            same_type = [o for o in on_cloud if o.instance_type == instance_type]
            if same_type:
                return CatalogError(
                    f"{cloud} does not offer {instance_type} for training{where}.",
                    hint=f"{instance_type} trains in: {_listing(sorted({o.region for o in same_type}))}.",
                )
            return CatalogError(
                f"Unknown {cloud} instance type {instance_type!r}.",
                hint=f"Instance types in the catalog: {_listing(sorted({o.instance_type for o in on_cloud}))}.",
            )
        wanted = normalize_accelerator(accelerator) if accelerator is not None else None
        if wanted is not None:
            with_acc = [o for o in on_cloud if o.accelerator == wanted]
            if not with_acc:
                return CatalogError(
                    f"{cloud} has no {wanted} offers in the catalog.",
                    hint=f"Accelerators on {cloud}: {_listing(self.accelerators(cloud)) or 'none'}.",
                )
            local = [o for o in with_acc if region is None or o.region == region]
            if not local:
                return CatalogError(
                    f"{cloud} has no {wanted} offers{where}.",
                    hint=f"{wanted} is offered in: {_listing(sorted({o.region for o in with_acc}))}.",
                )
            counts = sorted({o.accelerator_count for o in local})
            if accelerator_count is not None and accelerator_count not in counts:
                types = _listing(sorted({f"{o.instance_type} ({o.accelerator_count}x)" for o in local}))
                return CatalogError(
                    f"{cloud} has no node with exactly {accelerator_count} x {wanted}{where}.",
                    hint=f"{wanted} comes {_counts(counts)} per node: {types}. "
                    "Ask for one of those counts per node, or more nodes.",
                )
            pool = [o for o in local if accelerator_count is None or o.accelerator_count == accelerator_count]
        else:
            pool = [o for o in on_cloud if region is None or o.region == region]
            if accelerator_count is not None:
                counts = sorted({o.accelerator_count for o in pool})
                if accelerator_count not in counts:
                    return CatalogError(
                        f"{cloud} has no node with exactly {accelerator_count} accelerators{where}.",
                        hint=f"Accelerator counts available: {_counts(counts)}.",
                    )
                pool = [o for o in pool if o.accelerator_count == accelerator_count]
        biggest_cpu = max(o.vcpus for o in pool)
        biggest_memory = max(o.memory_gib for o in pool)
        return CatalogError(
            f"No {cloud} offer{where} has at least {min_vcpus or 0} vCPUs and {min_memory_gib or 0} GiB of memory"
            + (f" with {wanted}" if wanted else "")
            + ".",
            hint=f"The largest matching offers have {biggest_cpu} vCPUs and {biggest_memory:g} GiB of memory.",
        )

    def _check_cloud(self, cloud: str) -> None:
        if cloud not in CLOUDS:
            raise CatalogError(f"Unknown cloud {cloud!r}.", hint=f"Choose one of: {', '.join(CLOUDS)}.")


def _counts(counts: list[int]) -> str:
    return "in counts of " + ", ".join(str(c) for c in counts)
