"""The machine tables: what each cloud offers for training, as facts, apart from prices.

``data/machines_<cloud>.csv`` (built by ``scripts/build_machines.py`` from the clouds' own data:
botocore's ``TrainingInstanceType`` enum with moto's and the sagemaker SDK's instance facts,
Google's machine-type and GPU-region tables, Microsoft's VM size pages; each row cites its
source) holds one row per instance type: vCPUs, memory, accelerator model, count and memory, and
the regions where it trains. :class:`MachineOffers` makes them one offer per region, priced where
a price file has that (region, instance type) and unpriced otherwise: a machine without a sourced
price is still chosen, planned and submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from cloudtrain.catalog.accelerators import normalize_accelerator
from cloudtrain.catalog.offers import Offer, OfferFormatError, csv_rows

#: Where a machine whose training regions are not sourced is placed when no region is asked for,
#: and where an unpriced machine goes first: each cloud's first region.
HOME_REGIONS = {"sagemaker": "us-east-1", "azureml": "eastus", "vertex": "us-central1"}

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
    machines = []
    for line, row in csv_rows(text, MACHINE_FIELDS, "machine table"):
        try:
            cloud, instance_type, vcpus, memory_gib, accelerator_cell, count_cell, memory, regions, source = (
                cell.strip() for cell in row[:len(MACHINE_FIELDS)])
            accelerator = normalize_accelerator(accelerator_cell) if accelerator_cell else None
            count = int(count_cell or 0)
            if (accelerator is None) != (count == 0):
                raise ValueError("accelerator and accelerator_count disagree")
            machine = Machine(cloud=cloud, instance_type=instance_type, vcpus=int(vcpus), memory_gib=float(memory_gib),
                              accelerator=accelerator, accelerator_count=count,
                              accelerator_memory_gib=float(memory) if memory else None,
                              regions=tuple(regions.split()), source=source)
        except Exception as error:  # ValueError, CatalogError from an unknown accelerator name
            raise OfferFormatError(f"line {line}: {error}") from None
        if machine.vcpus <= 0 or machine.memory_gib <= 0 or not machine.instance_type:
            raise OfferFormatError(f"line {line}: vcpus, memory_gib and instance_type are required")
        if expected_cloud is not None and machine.cloud != expected_cloud:
            raise OfferFormatError(f"line {line}: cloud {machine.cloud!r} in the {expected_cloud} machine table")
        machines.append(machine)
    return machines


class MachineOffers(Sequence[Offer]):
    """Every (machine, region) offer of the tables, built only when all are asked for: finding a
    spec's offer expands just the machines that fit (:meth:`candidates`), which keeps ``estimate``
    fast with thousands of (machine, region) pairs."""

    def __init__(self, machines: Iterable[Machine], priced: Iterable[Offer]) -> None:
        self.machines = list(machines)
        self.priced = {(o.cloud, o.instance_type, o.region): o for o in priced}
        regions = {(m.cloud, m.instance_type): m.regions for m in self.machines}
        self.extra = [o for o in self.priced.values()  # priced rows the tables lack
                      if o.region not in regions.get((o.cloud, o.instance_type), ())]
        self._all: list[Offer] | None = None

    def _offers(self) -> list[Offer]:
        if self._all is None:
            self._all = list(self.candidates())
        return self._all

    def candidates(self, cloud: str | None = None, region: str | None = None,
                   fits: Callable[[object], bool] = lambda item: True) -> Iterator[Offer]:
        """The offers of ``cloud`` in ``region`` (None: all) of the machines that ``fits`` accepts."""
        for machine in self.machines:
            if (cloud is None or machine.cloud == cloud) and fits(machine):
                regions = machine.regions or (region or HOME_REGIONS.get(machine.cloud, ""),)  # regions not sourced
                for where in regions if region is None else (region,) if region in regions else ():
                    yield self.priced.get((machine.cloud, machine.instance_type, where)) or machine.offer(where)
        for offer in self.extra:
            if (cloud is None or offer.cloud == cloud) and (region is None or offer.region == region) and fits(offer):
                yield offer

    def __iter__(self) -> Iterator[Offer]:
        return iter(self._offers())

    def __len__(self) -> int:
        return len(self._offers())

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return self._offers()[index]
