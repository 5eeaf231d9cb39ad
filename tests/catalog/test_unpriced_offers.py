"""Machines are chosen by their facts; prices are optional: unpriced offers plan and show as such,
a budget cannot be proven for them, and the user's own prices win."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloudtrain.catalog import Catalog, load_catalog
from cloudtrain.catalog.machines import Machine, MachineOffers, read_machines
from cloudtrain.catalog.offers import FIELDS, OfferFormatError
from cloudtrain.cost import check_budget, estimate_spec
from cloudtrain.errors import BudgetExceededError
from cloudtrain.plan import make_plan
from cloudtrain.spec import JobSpec

from .conftest import make_offer


def machine(name: str, vcpus: int, memory: float, accelerator: str | None = None, count: int = 0,
            regions: tuple[str, ...] = ("eastus", "westus2")) -> Machine:
    return Machine(cloud="azureml", instance_type=name, vcpus=vcpus, memory_gib=memory, accelerator=accelerator,
                   accelerator_count=count, accelerator_memory_gib=16.0 if accelerator else None, regions=regions, source="test")


MACHINES = [machine("Standard_D4s_v5", 4, 16.0), machine("Standard_D8s_v5", 8, 32.0), machine("Standard_D16s_v5", 16, 64.0),
            machine("Standard_NC4as_T4_v3", 4, 28.0, "T4", 1), machine("Standard_NC64as_T4_v3", 64, 440.0, "T4", 4)]
PRICED = [make_offer("Standard_D8s_v5", 0.38, vcpus=8, memory=32.0), make_offer("Standard_D16s_v5", 0.70, vcpus=16, memory=64.0),
          make_offer("Standard_NC64as_T4_v3", 4.35, accelerator="T4", count=4, vcpus=64, memory=440.0)]
CATALOG = Catalog(offers=MachineOffers(MACHINES, PRICED))  # type: ignore[arg-type]


def spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate({"name": "job", "code": ".", "entrypoint": "t.py", "max_runtime": "2h", **fields})


def test_every_machine_is_an_offer_in_every_region_priced_where_sourced() -> None:
    assert len(CATALOG.offers) == 2 * len(MACHINES)
    d8 = {o.region: o for o in CATALOG.offers if o.instance_type == "Standard_D8s_v5"}
    assert d8["eastus"].usd_per_hour == 0.38 and d8["eastus"].price_origin == "catalog"
    assert d8["westus2"].usd_per_hour is None and d8["westus2"].price_origin == "no sourced price"


def test_a_cpu_job_gets_the_smallest_adequate_cpu_machine() -> None:
    offer = CATALOG.cheapest("azureml", accelerator=None, accelerator_count=0, min_vcpus=4, min_memory_gib=16)
    assert offer.instance_type == "Standard_D4s_v5" and offer.usd_per_hour is None  # smallest wins, though unpriced
    plan = make_plan(spec(resources={"cpus": 4, "memory_gib": 16}), "azureml", catalog=CATALOG)
    assert plan.instance_type == "Standard_D4s_v5" and plan.offer.accelerator_count == 0
    assert not plan.estimate.priced and plan.estimate.max_total_usd is None


def test_priced_regions_come_first_for_one_machine() -> None:
    plan = make_plan(spec(resources={"cpus": 8}), "azureml", catalog=CATALOG)
    assert (plan.instance_type, plan.region, plan.estimate.max_total_usd) == ("Standard_D8s_v5", "eastus", 0.76)


def test_accelerator_by_name_and_count_finds_the_multi_gpu_node() -> None:
    plan = make_plan(spec(resources={"accelerator": "T4:4", "nodes": 2}), "azureml", catalog=CATALOG)
    assert plan.instance_type == "Standard_NC64as_T4_v3" and plan.estimate.max_total_usd == round(4.35 * 2 * 2, 2)


def test_estimates_rank_unpriced_after_priced_and_a_budget_cannot_be_proven() -> None:
    job = spec(resources={"cpus": 4, "memory_gib": 16}, budget={"max_usd": 100})
    result = estimate_spec(job, CATALOG, clouds=["azureml"])
    assert [o.priced for o in result.offers] == [False]
    with pytest.raises(BudgetExceededError, match="has no sourced price, so the job's cost bound cannot be proven"):
        check_budget(job, result.offers[0])
    check_budget(job.model_copy(update={"budget": None}), result.offers[0])  # without a budget it is submitted


def test_machine_tables_refuse_bad_rows() -> None:
    header = "cloud,instance_type,vcpus,memory_gib,accelerator,accelerator_count,accelerator_memory_gib,regions,source\n"
    assert read_machines(header + "azureml,Standard_D4s_v5,4,16,,0,,eastus westus2,docs\n")[0].regions == ("eastus", "westus2")
    with pytest.raises(OfferFormatError, match="disagree"):
        read_machines(header + "azureml,X,4,16,T4,0,,eastus,docs\n")
    with pytest.raises(OfferFormatError, match="required"):
        read_machines(header + "azureml,X,0,16,,0,,eastus,docs\n")
    unplaced = read_machines(header + "azureml,Standard_ND96isr_H100_v5,96,1900,H100,8,80,,docs\n")
    assert unplaced[0].regions == ()  # regions not sourced: planned where asked
    offers = MachineOffers(unplaced, [])
    assert [o.region for o in offers.candidates("azureml")] == ["eastus"]
    assert [o.region for o in offers.candidates("azureml", "westeurope")] == ["westeurope"]


def test_your_prices_win_and_are_shown_as_yours(tmp_path: Path) -> None:
    catalog_file = tmp_path / "mine.csv"
    first = next(o for o in load_catalog().offers if o.priced)
    row = {**first.to_row(), "usd_per_hour": "0.01", "spot_usd_per_hour": "", "source": "our contract"}
    catalog_file.write_text(",".join(FIELDS) + "\n" + ",".join(f'"{row[f]}"' for f in FIELDS) + "\n")
    home = tmp_path / "home"
    env = {"CLOUDTRAIN_HOME": str(home), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "cloudtrain", "prices", "import", str(catalog_file)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    mine = [o for o in load_catalog(home / "catalog").offers if o.price_origin == "your price"]
    assert [(o.cloud, o.region, o.instance_type, o.usd_per_hour) for o in mine] == [(first.cloud, first.region, first.instance_type, 0.01)]
    bad = tmp_path / "bad.csv"
    bad.write_text("cloud,region\nsagemaker,us-east-1\n")
    refused = subprocess.run([sys.executable, "-m", "cloudtrain", "prices", "import", str(bad)], capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "header must be" in refused.stderr and "Traceback" not in refused.stderr


def test_prices_in_config_are_your_prices_and_prove_a_budget(tmp_path: Path) -> None:
    from cloudtrain.api import Job
    from cloudtrain.errors import SpecError

    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text("name: mine\ncode: .\nentrypoint: train.py\nframework: {name: pytorch}\n"
                                       "resources: {accelerator: 'A100:8', nodes: 2}\nmax_runtime: 2h\nbudget: {max_usd: 150}\n"
                                       "sagemaker: {role_arn: 'arn:aws:iam::123456789012:role/T', bucket: b}\n")
    (tmp_path / "cloudtrain.yaml").write_text("prices:\n  - {cloud: sagemaker, region: us-east-1, instance_type: ml.p4d.24xlarge, "
                                              "usd_per_hour: 25.0}\n")
    job = Job.from_file(tmp_path / "job.yaml")
    row = next(r for r in job.estimate() if r.cloud == "sagemaker")
    assert (row.instance_type, row.price_origin, row.max_total_usd) == ("ml.p4d.24xlarge", "your price", 100.0)
    assert job.dry_run("sagemaker").payload["ResourceConfig"]["InstanceCount"] == 2  # the budget is proven: 100 <= 150
    (tmp_path / "cloudtrain.yaml").write_text("prices:\n  - {cloud: sagemaker, region: us-east-1, usd_per_hour: -1}\n")
    with pytest.raises(SpecError, match=r"prices\[0\]: needs cloud, region, instance_type and usd_per_hour"):
        Job.from_file(tmp_path / "job.yaml")
