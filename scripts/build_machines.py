#!/usr/bin/env python3
"""Rebuild ``cloudtrain/catalog/data/machines_{sagemaker,azureml,vertex}.csv``: the instance tables.

Machines are facts, kept apart from prices: one row per instance type a cloud offers for
training, with vCPUs, memory, accelerator (a neutral name of
``cloudtrain.catalog.accelerators.KNOWN_ACCELERATORS``), accelerator count, memory per
accelerator, the regions where it trains, and where each fact came from. Run it with the
project's virtual environment::

    .venv/bin/python scripts/build_machines.py          # writes the three files
    .venv/bin/python scripts/build_machines.py --check  # exits 1 if they are out of date

Output is sorted by instance type and written deterministically.

Sources
-------
* SageMaker: the instance types are botocore's ``TrainingInstanceType`` enum (sagemaker service
  model). vCPUs and memory of ``ml.X`` come from moto's EC2 data
  (``moto/ec2/resources/instance_types.json.gz``, EC2 type ``X``; MiB converted to GiB);
  accelerator count and memory from the sagemaker SDK's
  ``sagemaker/core/image_uri_config/instance_gpu_info.json`` where it lists the type, else the
  EC2 data's ``GpuInfo`` / ``NeuronInfo``. ``scripts/catalog_sources/sagemaker_facts.csv`` fills
  in a type moto no longer lists (ml.p3.2xlarge). SageMaker's regions are botocore's endpoint data
  (``api.sagemaker``, partition ``aws``: no cn / gov, no ``-fips`` endpoints). A type that
  instance_gpu_info.json lists per region trains in those of its regions that are SageMaker
  regions; any other type is given every SageMaker region (said so in its ``source``).
  Enum values with no size facts anywhere shipped offline, left out (every row needs vCPUs and
  memory): ml.p2.xlarge, ml.p2.8xlarge, ml.p2.16xlarge, ml.p3.8xlarge, ml.p3.16xlarge,
  ml.p6e-gb200.36xlarge (with botocore 1.44.8 / moto 5.2.5; the script prints the list).
* Azure ML: ``scripts/catalog_sources/azureml_machines.csv``: vCPUs, RAM (GB as published) and
  GPU count from the Azure Resource SKUs as generated into microsoft/aspire's
  ``AksNodeVmSizes.Generated.cs`` (commit 59d405ff5a49), GPU model and memory from each series'
  Microsoft Learn page. Regions are those of cloudtrain's own Azure price rows
  (``azureml_prices.csv``), no published per-size region table being shipped offline; a size
  without price rows has no region (said so in ``source``).
* Vertex AI: ``scripts/catalog_sources/vertex_machines.csv``, transcribed from Google's
  published machine-type, GPU and TPU tables and the Vertex AI training pages, each row citing
  them. Attached GPUs are ``MACHINE+ACCELERATOR_ENUMxCOUNT`` (the enum an
  ``aiplatform_v1.AcceleratorType`` name, checked here); built-in GPU machine types (a2/a3/g2)
  and TPU VM machine types (ct5lp-hightpu-*, ct5p-hightpu-*, ct6e-standard-*) are plain names.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudtrain.catalog.accelerators import KNOWN_ACCELERATORS, normalize_accelerator  # noqa: E402

SOURCES = ROOT / "scripts" / "catalog_sources"
DATA = ROOT / "cloudtrain" / "catalog" / "data"
CLOUDS = ("sagemaker", "azureml", "vertex")
HEADER = ["cloud", "instance_type", "vcpus", "memory_gib", "accelerator", "accelerator_count",
          "accelerator_memory_gib", "regions", "source"]
MIB_PER_GIB = 1024


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _package_file(package: str, *relative: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).resolve().parent.joinpath(*relative)


def _num(value: float) -> str:
    value = round(float(value), 2)
    return str(int(value)) if value == int(value) else f"{value:g}"


def _row(cloud: str, instance_type: str, vcpus: int, memory_gib: float, accelerator: str | None,
         count: int, per_accelerator_gib: float | None, regions: list[str], source: str) -> dict[str, str]:
    if accelerator:
        accelerator = normalize_accelerator(accelerator)
        assert accelerator in KNOWN_ACCELERATORS
    return {
        "cloud": cloud,
        "instance_type": instance_type,
        "vcpus": str(int(vcpus)),
        "memory_gib": _num(memory_gib),
        "accelerator": accelerator or "",
        "accelerator_count": str(int(count) if accelerator else 0),
        "accelerator_memory_gib": _num(per_accelerator_gib) if accelerator and per_accelerator_gib else "",
        "regions": " ".join(sorted(set(regions))),
        "source": source,
    }


# --- SageMaker ---------------------------------------------------------------------------------

def sagemaker_training_types() -> list[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return list(model.shape_for("TrainingInstanceType").enum)


def sagemaker_regions() -> list[str]:
    endpoints = json.loads(_package_file("botocore", "data", "endpoints.json").read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        if partition["partition"] == "aws":
            names = partition["services"]["api.sagemaker"]["endpoints"]
            return sorted(n for n in names if "fips" not in n and n in partition["regions"])
    raise SystemExit("botocore endpoints.json has no aws partition")


def _ec2_accelerator(name: str, per_device_gib: float) -> str:
    canonical = normalize_accelerator(name)
    if canonical == "A100" and per_device_gib > 60:
        return "A100-80GB"
    return canonical


def build_sagemaker() -> tuple[list[dict[str, str]], list[str]]:
    bv, mv, sv = version("botocore"), version("moto"), version("sagemaker")
    gpu_info = json.loads(_package_file("sagemaker", "core", "image_uri_config", "instance_gpu_info.json")
                          .read_text(encoding="utf-8"))
    with gzip.open(_package_file("moto", "ec2", "resources", "instance_types.json.gz"), "rt", encoding="utf-8") as h:
        ec2 = json.load(h)
    table = {r["instance_type"]: r for r in _read_csv(SOURCES / "sagemaker_facts.csv")}
    all_regions = sagemaker_regions()
    region_src = f"regions: botocore {bv} data/endpoints.json api.sagemaker (aws partition)"
    rows, missing = [], []
    for itype in sagemaker_training_types():
        listed = sorted(r for r in gpu_info if itype in gpu_info[r] and r in all_regions)
        sm = next((gpu_info[r][itype] for r in sorted(gpu_info) if itype in gpu_info[r]), None)
        gpu_src = f"sagemaker {sv} sagemaker/core/image_uri_config/instance_gpu_info.json"
        if listed:
            regions, rsrc = listed, f"regions: {gpu_src} (regions listing the type) within {region_src}"
        else:
            regions, rsrc = all_regions, f"{region_src}, all SageMaker regions (no per-type region data shipped)"
        e = ec2.get(itype.removeprefix("ml."))
        if e is None:
            if itype not in table:
                missing.append(itype)
                continue
            f = table[itype]
            rows.append(_row("sagemaker", itype, int(f["vcpus"]), float(f["memory_gib"]), f["accelerator"] or None,
                             int(f["accelerator_count"] or 0),
                             float(f["accelerator_memory_gib"]) / int(f["accelerator_count"]) if f["accelerator_memory_gib"] else None,
                             regions, f"{f['source']} (scripts/catalog_sources/sagemaker_facts.csv); {rsrc}"))
            continue
        vcpus = int(e["VCpuInfo"]["DefaultVCpus"])
        mem = e["MemoryInfo"]["SizeInMiB"] / MIB_PER_GIB
        src = f"vCPUs, memory: moto {mv} moto/ec2/resources/instance_types.json.gz ({itype.removeprefix('ml.')})"
        acc, count, per = None, 0, None
        gpus = (e.get("GpuInfo") or {}).get("Gpus") or []
        neuron = (e.get("NeuronInfo") or {}).get("NeuronDevices") or []
        if gpus:
            count = sum(int(g["Count"]) for g in gpus)
            total = float(e["GpuInfo"].get("TotalGpuMemoryInMiB") or 0)
            asrc = "moto EC2 GpuInfo"
            if sm:
                count, total, asrc = int(sm["Count"]), float(sm["TotalGpuMemoryInMiB"]), gpu_src
            per = total / MIB_PER_GIB / max(count, 1)
            acc = _ec2_accelerator(gpus[0]["Name"], per)
            src += f"; accelerator model: moto EC2 GpuInfo; count, memory: {asrc}"
        elif neuron:
            count = sum(int(d["Count"]) for d in neuron)
            per = int(neuron[0]["MemoryInfo"]["SizeInMiB"]) / MIB_PER_GIB
            acc = neuron[0]["Name"]
            src += "; accelerator: moto EC2 NeuronInfo"
            if per > 256:  # trn2: moto lists 524288 MiB per Trainium2 device, beyond any published chip
                src += f" (its per-device memory, {_num(per)} GiB, is not credible: left empty)"
                per = None
        rows.append(_row("sagemaker", itype, vcpus, mem, acc, count, per, regions,
                         f"{src}; type: botocore {bv} sagemaker TrainingInstanceType; {rsrc}"))
    return rows, missing


# --- Azure ML ----------------------------------------------------------------------------------

def build_azureml() -> list[dict[str, str]]:
    price_regions: dict[str, set[str]] = {}
    for p in _read_csv(SOURCES / "azureml_prices.csv"):
        price_regions.setdefault(p["instance_type"], set()).add(p["region"])
    rows = []
    for f in _read_csv(SOURCES / "azureml_machines.csv"):
        regions = sorted(price_regions.get(f["instance_type"], ()))
        note = ("regions: those of cloudtrain's Azure price rows (scripts/catalog_sources/azureml_prices.csv), "
                "not a published availability table" if regions else
                "regions: not sourced (no published per-size availability shipped offline, no cloudtrain price row)")
        count = int(f["accelerator_count"] or 0)
        rows.append(_row("azureml", f["instance_type"], int(f["vcpus"]), float(f["memory_gb"]),
                         f["accelerator"] or None, count,
                         float(f["accelerator_memory_gib"]) if f["accelerator_memory_gib"] else None,
                         regions, f"{f['source']}; memory GB as published; {note}"))
    return rows


# --- Vertex AI ---------------------------------------------------------------------------------

def build_vertex() -> list[dict[str, str]]:
    from google.cloud import aiplatform_v1

    enums = {a.name for a in aiplatform_v1.AcceleratorType}
    rows = []
    for f in _read_csv(SOURCES / "vertex_machines.csv"):
        itype = f["instance_type"]
        if "+" in itype:
            enum = itype.split("+", 1)[1].rsplit("x", 1)[0]
            if enum not in enums:
                raise SystemExit(f"{itype}: {enum} is not an aiplatform_v1.AcceleratorType")
            if normalize_accelerator(enum) != f["accelerator"]:
                raise SystemExit(f"{itype}: {enum} is not {f['accelerator']}")
        rows.append(_row("vertex", itype, int(f["vcpus"]), float(f["memory_gb"]), f["accelerator"] or None,
                         int(f["accelerator_count"] or 0),
                         float(f["accelerator_memory_gib"]) if f["accelerator_memory_gib"] else None,
                         f["regions"].split(), f["source"]))
    return rows


UNPLACED: list[str] = []  # rows with facts but no sourced training region: kept, with no regions
NO_REGIONS = "; training regions not sourced: planned in the region asked for, else the cloud's first region"


def render(rows: list[dict[str, str]]) -> str:
    UNPLACED.extend(r["instance_type"] for r in rows if not r["regions"])
    rows = [{**r, "source": r["source"] + NO_REGIONS} if not r["regions"] else r for r in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    names = [r["instance_type"] for r in rows]
    if len(names) != len(set(names)):
        raise SystemExit("duplicate instance types")
    writer.writerows(sorted(rows, key=lambda r: r["instance_type"]))
    return out.getvalue()


def build_all() -> tuple[dict[str, str], list[str]]:
    sagemaker, missing = build_sagemaker()
    return {"sagemaker": render(sagemaker), "azureml": render(build_azureml()),
            "vertex": render(build_vertex())}, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether the files are current")
    args = parser.parse_args(argv)
    texts, missing = build_all()
    stale = []
    for cloud in CLOUDS:
        target = DATA / f"machines_{cloud}.csv"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == texts[cloud]:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(texts[cloud], encoding="utf-8")
    if missing and not args.check:
        print("SageMaker training types without size facts (left out): " + " ".join(missing))
    if UNPLACED and not args.check:
        print("Types with facts but no sourced region (kept, planned where asked): " + " ".join(sorted(UNPLACED)))
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
