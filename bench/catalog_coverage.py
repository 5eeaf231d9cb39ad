"""Catalog coverage: what can be planned against each cloud's own list, and where prices are sourced.

Prints:
- per cloud: instance types in the machine tables (all of them can be planned) against the cloud's
  own list (SageMaker: botocore's ``TrainingInstanceType`` enum; Azure ML and Vertex: their tables),
  and how many of those types have a sourced price somewhere;
- per cloud and region: offers (machine x region), priced offers, GPU offers, the oldest price;
- the machines the catalog issue names, each in its region: priced or not, and as of when;
- ``estimate`` wall time of a GPU spec with the full tables (median of 5, in fresh processes).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from cloudtrain.catalog import load_catalog

REPO = Path(__file__).resolve().parents[1]

# (cloud, region, instance type) the catalog issue names; a 2-node A100:8 job must price on all three.
NAMED = [("sagemaker", "us-east-1", "ml.p4d.24xlarge"), ("sagemaker", "us-west-2", "ml.p5.48xlarge"),
         ("sagemaker", "us-east-1", "ml.p5.48xlarge"), ("sagemaker", "us-east-1", "ml.trn1.32xlarge"),
         ("azureml", "eastus", "Standard_ND96asr_v4"), ("azureml", "eastus", "Standard_ND96amsr_A100_v4"),
         ("vertex", "us-central1", "a2-highgpu-8g"), ("vertex", "europe-west4", "a2-ultragpu-8g"),
         ("vertex", "us-central1", "n1-standard-8+NVIDIA_TESLA_T4x1"), ("vertex", "us-central1", "a3-highgpu-8g")]


def own_list_sizes() -> dict[str, int | None]:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("TrainingInstanceType")
    return {"sagemaker": len(shape.enum), "azureml": None, "vertex": None}


def main() -> None:
    catalog = load_catalog()
    offers = list(catalog.offers)
    machines = defaultdict(set)
    priced_types = defaultdict(set)
    table: dict[tuple[str, str], list] = defaultdict(list)
    for offer in offers:
        machines[offer.cloud].add(offer.instance_type)
        if offer.priced:
            priced_types[offer.cloud].add(offer.instance_type)
        table[(offer.cloud, offer.region)].append(offer)
    sizes = own_list_sizes()
    print(f"{'cloud':10s} {'plannable types':>16s} {'cloud list':>11s} {'priced types':>13s}")
    for cloud in sorted(machines):
        own = sizes.get(cloud)
        print(f"{cloud:10s} {len(machines[cloud]):16d} {own if own is not None else 'its table':>11} {len(priced_types[cloud]):13d}")
    print()
    print(f"{'cloud':10s} {'region':16s} {'offers':>6s} {'priced':>6s} {'GPU':>5s}  oldest price")
    for (cloud, region), rows in sorted(table.items()):
        priced = [o for o in rows if o.priced]
        if not priced:
            continue
        gpus = sum(1 for o in rows if o.accelerator)
        print(f"{cloud:10s} {region:16s} {len(rows):6d} {len(priced):6d} {gpus:5d}  {min(o.price_as_of for o in priced)}")
    unpriced_regions = sum(1 for rows in table.values() if not any(o.priced for o in rows))
    print(f"total: {len(offers)} offers ({sum(o.priced for o in offers)} priced), {len(table)} cloud regions "
          f"({unpriced_regions} without any sourced price, not listed above)")
    by_key = {(o.cloud, o.region, o.instance_type): o for o in offers}
    print()
    for key in NAMED:
        offer = by_key.get(key)
        state = "not in the machine tables" if offer is None else (
            f"${offer.usd_per_hour:.4f}/h as of {offer.price_as_of}" if offer.priced else "no sourced price")
        print(f"{' '.join(key):58s} {state}")
    spec = REPO / "examples" / "digits-cnn.yaml"
    times = []
    for _ in range(6):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cloudtrain", "estimate", str(spec)], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    print(f"estimate {spec.relative_to(REPO)}: median {statistics.median(times[1:]) * 1000:.0f} ms (target < 350 ms)")


if __name__ == "__main__":
    main()
