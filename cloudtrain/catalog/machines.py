"""The machine tables: what each cloud offers for training, as facts, apart from prices.

``data/machines_<cloud>.csv`` (built by ``scripts/build_machines.py`` from the clouds' own data:
botocore's ``TrainingInstanceType`` enum with moto's and the sagemaker SDK's instance facts,
Google's machine-type and GPU-region tables, Microsoft's VM size pages; each row cites its
source) holds one row per instance type: vCPUs, memory, accelerator model, count and memory, and
the regions where it trains. :func:`offers_for` turns them into one offer per region, priced where
a price file has that (region, instance type) and unpriced otherwise: a machine without a sourced
price is still chosen, planned and submitted.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterable

from cloudtrain.catalog.accelerators import normalize_accelerator
from cloudtrain.catalog.offers import Offer, OfferFormatError

MACHINE_FIELDS: tuple[str, ...] = ("cloud", "instance_type", "vcpus", "memory_gib", "accelerator", "accelerator_count",
                                   "accelerator_memory_gib", "regions", "source")


@dataclass(frozen=True)
class Machine:
    cloud: str
    instance_type: str
    vcpus: int
    memory_gib: float
    accelerator: str | None
    accelerator_count: int
    accelerator_memory_gib: float | None
    regions: tuple[str, ...]
    source: str

    def offer(self, region: str) -> Offer:
        """This machine in ``region``, without a price."""
        return Offer(cloud=self.cloud, region=region, instance_type=self.instance_type, accelerator=self.accelerator,
                     accelerator_count=self.accelerator_count, accelerator_memory_gib=self.accelerator_memory_gib,
                     vcpus=self.vcpus, memory_gib=self.memory_gib, usd_per_hour=None, spot_usd_per_hour=None,
                     price_as_of=None, source=None, price_origin="no sourced price")


def read_machines(text: str, *, expected_cloud: str | None = None) -> list[Machine]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != MACHINE_FIELDS:
        raise OfferFormatError(f"machine table header must be {','.join(MACHINE_FIELDS)}")
    machines = []
    for line, row in enumerate(reader, start=2):
        try:
            accelerator = normalize_accelerator(row["accelerator"]) if row["accelerator"].strip() else None
            count = int(row["accelerator_count"] or 0)
            if (accelerator is None) != (count == 0):
                raise ValueError("accelerator and accelerator_count disagree")
            memory = row["accelerator_memory_gib"].strip()
            machine = Machine(cloud=row["cloud"].strip(), instance_type=row["instance_type"].strip(), vcpus=int(row["vcpus"]),
                              memory_gib=float(row["memory_gib"]), accelerator=accelerator, accelerator_count=count,
                              accelerator_memory_gib=float(memory) if memory else None,
                              regions=tuple(row["regions"].split()), source=row["source"].strip())
        except Exception as error:  # ValueError, CatalogError from an unknown accelerator name
            raise OfferFormatError(f"line {line}: {error}") from None
        if machine.vcpus <= 0 or machine.memory_gib <= 0 or not machine.regions or not machine.instance_type:
            raise OfferFormatError(f"line {line}: vcpus, memory_gib, regions and instance_type are required")
        if expected_cloud is not None and machine.cloud != expected_cloud:
            raise OfferFormatError(f"line {line}: cloud {machine.cloud!r} in the {expected_cloud} machine table")
        machines.append(machine)
    return machines


def offers_for(machines: Iterable[Machine], priced: Iterable[Offer]) -> list[Offer]:
    """Every (machine, region) as an offer: the priced offer where one exists, else unpriced;
    priced offers of machines or regions the tables lack are kept as they are."""
    by_key = {(o.instance_type, o.region): o for o in priced}
    offers = []
    for machine in machines:
        for region in machine.regions:
            offers.append(by_key.pop((machine.instance_type, region), None) or machine.offer(region))
    return offers + list(by_key.values())
