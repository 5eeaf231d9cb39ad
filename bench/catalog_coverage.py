"""Catalog coverage: offers per cloud and region, GPU offers among them, and the oldest price."""

from __future__ import annotations

from collections import defaultdict

from cloudtrain.catalog import load_catalog


def main() -> None:
    offers = load_catalog().offers
    table: dict[tuple[str, str], list] = defaultdict(list)
    for offer in offers:
        table[(offer.cloud, offer.region)].append(offer)
    print(f"{'cloud':10s} {'region':16s} {'offers':>6s} {'GPU':>5s}  oldest price")
    for (cloud, region), rows in sorted(table.items()):
        gpus = sum(1 for o in rows if o.accelerator)
        print(f"{cloud:10s} {region:16s} {len(rows):6d} {gpus:5d}  {min(o.price_as_of for o in rows)}")
    print(f"total: {len(offers)} offers, {len({o.cloud for o in offers})} clouds, {len(table)} cloud regions")


if __name__ == "__main__":
    main()
