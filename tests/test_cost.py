"""Cost estimates against hand-computed values from the catalog's own rows, and the budget guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from cloudtrain.catalog import load_catalog
from cloudtrain.cost import check_budget, estimate_spec
from cloudtrain.errors import BudgetExceededError, CatalogError
from cloudtrain.plan import cheapest_cloud, make_plan
from cloudtrain.runner import Runner
from cloudtrain.spec import JobSpec

CATALOG = load_catalog()


def spec(**fields) -> JobSpec:  # type: ignore[no-untyped-def]
    return JobSpec.model_validate({"name": "job", "code": ".", "entrypoint": "t.py", **fields})


def cheapest_row(cloud: str, accelerator: str, count: int):  # type: ignore[no-untyped-def]
    rows = [o for o in CATALOG.offers if o.cloud == cloud and o.accelerator == accelerator and o.accelerator_count == count and o.priced]
    smallest = min((o.vcpus, o.memory_gib) for o in rows)  # the smallest adequate machine wins, then the price
    return min((o for o in rows if (o.vcpus, o.memory_gib) == smallest), key=lambda o: o.usd_per_hour)


def test_single_gpu_on_demand() -> None:
    result = estimate_spec(spec(resources={"accelerator": "T4"}, max_runtime="90m"), CATALOG, clouds=("sagemaker", "azureml"))
    for offer in result.offers:
        row = cheapest_row(offer.cloud, "T4", 1)
        assert (offer.instance_type, offer.usd_per_hour) == (row.instance_type, row.usd_per_hour)
        assert offer.max_total_usd == round(row.usd_per_hour * 1.5, 2)
    assert result.cheapest.max_total_usd == min(o.max_total_usd for o in result.offers)
    assert [o.max_total_usd for o in result.offers] == sorted(o.max_total_usd for o in result.offers)
    vertex = estimate_spec(spec(resources={"accelerator": "T4"}, max_runtime="90m"), CATALOG).offers[-1]
    assert vertex.cloud == "vertex" and not vertex.priced  # no sourced Vertex T4 price: shown, ranked last


def test_eight_gpus_per_node_with_spot() -> None:
    result = estimate_spec(spec(resources={"accelerator": "A100:8"}, max_runtime="3h", spot={"enabled": True}), CATALOG,
                           clouds=("azureml",))
    offer = result.offers[0]
    row = cheapest_row("azureml", "A100", 8)
    assert offer.accelerator_count == 8 and offer.instance_type == row.instance_type
    assert offer.spot is (row.spot_usd_per_hour is not None)
    expected = (row.spot_usd_per_hour if offer.spot else row.usd_per_hour) * 3
    assert offer.max_total_usd == round(expected, 2)
    assert offer.to_dict()["spot_usd_per_hour"] == row.spot_usd_per_hour


def test_multi_node_multiplies_by_nodes() -> None:
    one = estimate_spec(spec(resources={"accelerator": "T4"}, max_runtime="2h"), CATALOG, clouds=("sagemaker",)).offers[0]
    four = estimate_spec(spec(resources={"accelerator": "T4", "nodes": 4}, max_runtime="2h"), CATALOG, clouds=("sagemaker",))
    offer = four.offers[0]
    row = cheapest_row("sagemaker", "T4", 1)
    assert offer.usd_per_hour == round(row.usd_per_hour * 4, 6)
    assert offer.max_total_usd == round(row.usd_per_hour * 4 * 2, 2)
    assert one.max_total_usd == round(row.usd_per_hour * 2, 2)
    data = four.to_dict()
    assert data["nodes"] == 4 and data["max_runtime_hours"] == 2
    assert set(data["offers"][0]) == {"cloud", "region", "instance_type", "accelerator", "accelerator_count", "nodes",
                                      "usd_per_hour", "spot_usd_per_hour", "max_total_usd", "spot", "price_as_of", "price_origin"}


def test_no_max_runtime_gives_hourly_only() -> None:
    result = estimate_spec(spec(resources={"accelerator": "T4"}), CATALOG)
    assert result.max_runtime_hours is None
    assert all(o.max_total_usd is None and (o.usd_per_hour is None or o.usd_per_hour > 0) for o in result.offers)


def test_unknown_accelerator_lists_known_names() -> None:
    with pytest.raises(CatalogError) as caught:
        estimate_spec(spec(resources={"accelerator": "Z9000"}), CATALOG)
    assert "T4" in str(caught.value) and "A100" in str(caught.value)


def test_impossible_request_says_what_exists() -> None:
    result = estimate_spec(spec(resources={"accelerator": "T4:16"}), CATALOG)
    assert result.offers == [] and "T4" in result.unavailable["azureml"]


def test_stale_prices_are_flagged() -> None:
    result = estimate_spec(spec(resources={"accelerator": "T4"}), CATALOG)
    oldest = min(o.price_as_of for o in result.offers if o.priced)
    assert result.stale(oldest + timedelta(days=91)) and not result.stale(oldest + timedelta(days=1))


def test_budget_guard() -> None:
    job = spec(resources={"accelerator": "T4", "nodes": 2}, max_runtime="10h", budget={"max_usd": 1})
    plan = make_plan(job, "sagemaker", catalog=CATALOG)
    with pytest.raises(BudgetExceededError) as caught:
        check_budget(job, plan.estimate)
    assert caught.value.exit_code == 4
    assert f"${plan.estimate.max_total_usd:,.2f}" in caught.value.message and "$1.00" in caught.value.message
    check_budget(job.model_copy(update={"budget": None}), plan.estimate)
    with pytest.raises(BudgetExceededError, match="no upper bound"):
        check_budget(spec(resources={"accelerator": "T4"}, budget={"max_usd": 1}), plan.estimate.__class__(**{**plan.estimate.__dict__, "max_runtime_hours": None}))


def recording_provider():  # type: ignore[no-untyped-def]
    """A SageMaker provider that records each step and forbids any submission."""
    from cloudtrain.providers.sagemaker import SageMakerProvider

    class RecordingProvider(SageMakerProvider):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def check(self, plan) -> None:  # type: ignore[no-untyped-def]
            self.calls.append("check")
            super().check(plan)

        def render(self, plan):  # type: ignore[no-untyped-def]
            self.calls.append("render")
            return super().render(plan)

        def submit(self, plan, request):  # type: ignore[no-untyped-def]
            self.calls.append("submit")
            raise AssertionError("an over-budget job must not be submitted")

    return RecordingProvider()


def test_over_budget_submit_makes_no_provider_call_and_records_nothing(tmp_path: Path) -> None:
    from cloudtrain.specfile import build_spec

    data = {"name": "big", "code": ".", "entrypoint": "t.py", "framework": {"name": "pytorch", "version": "2.5"},
            "resources": {"accelerator": "T4", "nodes": 4}, "max_runtime": "24h", "budget": {"max_usd": 5},
            "sagemaker": {"region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/T", "bucket": "b"}}
    loaded = build_spec(data, source="big.yaml", base_dir=tmp_path)
    provider = recording_provider()
    runner = Runner(providers={"sagemaker": provider})
    plan = runner.plan(loaded, "sagemaker")
    with pytest.raises(BudgetExceededError):
        runner.submit(plan)
    assert "submit" not in provider.calls and "render" not in provider.calls
    assert runner.store.list() == []


def test_cheapest_cloud() -> None:
    job = spec(resources={"accelerator": "T4"}, max_runtime="1h")
    assert cheapest_cloud(job, CATALOG) == estimate_spec(job, CATALOG).cheapest.cloud


def test_estimate_cli_json_shape(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("name: j\ncode: .\nentrypoint: t.py\nresources: {accelerator: T4, nodes: 2}\nmax_runtime: 2h\n")
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "estimate", str(tmp_path / "job.yaml"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["job"] == "j" and data["nodes"] == 2 and data["max_runtime_hours"] == 2
    assert data["cheapest"] == data["offers"][0]
    row = cheapest_row(data["cheapest"]["cloud"], "T4", 1)
    assert data["cheapest"]["max_total_usd"] == round((row.spot_usd_per_hour if data["cheapest"]["spot"] else row.usd_per_hour) * 4, 2)
    date.fromisoformat(data["cheapest"]["price_as_of"])


POOLS = {"pools": [{"name": "train", "nodes": 2, "instance_type": {"sagemaker": "ml.g4dn.xlarge"}},
                   {"name": "data", "nodes": 1, "instance_type": {"sagemaker": "ml.m5.xlarge"}}]}


def _row(instance_type: str):  # type: ignore[no-untyped-def]
    return next(o for o in CATALOG.offers if o.cloud == "sagemaker" and o.region == "us-east-1" and o.instance_type == instance_type)


def test_pools_are_priced_as_the_sum_of_their_nodes() -> None:
    plan = make_plan(spec(resources=POOLS, max_runtime="2h"), "sagemaker", catalog=CATALOG, region="us-east-1")
    train, data = _row("ml.g4dn.xlarge"), _row("ml.m5.xlarge")
    hourly = 2 * train.usd_per_hour + data.usd_per_hour
    assert plan.estimate is not None and plan.estimate.nodes == 3
    assert plan.estimate.usd_per_hour == round(hourly, 6)
    assert plan.estimate.max_total_usd == round(hourly * 2, 2)
    assert plan.estimate.instance_type == "pools(train 2 x ml.g4dn.xlarge, data 1 x ml.m5.xlarge)"
    with pytest.raises(BudgetExceededError, match="over budget.max_usd"):  # the whole cluster counts, not the first pool
        check_budget(spec(resources=POOLS, max_runtime="2h", budget={"max_usd": round(2 * train.usd_per_hour * 2 + 0.01, 2)}),
                     plan.estimate)


def test_a_pool_without_a_sourced_price_leaves_the_cluster_unpriced() -> None:
    pools = {"pools": [POOLS["pools"][0], {"name": "data", "nodes": 1, "instance_type": {"sagemaker": "ml.c4.xlarge"}}]}
    plan = make_plan(spec(resources=pools, max_runtime="2h"), "sagemaker", catalog=CATALOG, region="us-east-1")
    assert plan.estimate is not None and not plan.estimate.priced
    with pytest.raises(BudgetExceededError, match="cannot be proven"):
        check_budget(spec(resources=pools, max_runtime="2h", budget={"max_usd": 100}), plan.estimate)


def test_estimate_cli_title_says_the_runtime_bound_in_minutes_and_hours(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("name: j\ncode: .\nentrypoint: t.py\nresources: {accelerator: T4}\nmax_runtime: 90m\n")
    out = subprocess.run([sys.executable, "-m", "cloudtrain", "estimate", str(tmp_path / "job.yaml")], capture_output=True, text=True,
                         check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "j: 1 node(s), at most 1 h 30 min" in out, out


def test_estimate_cli_of_a_sweep_shows_its_bound_and_the_sweep_budgets_verdict(tmp_path: Path) -> None:
    """The sweep's bound per cloud (trials x the per-trial figure), why a cloud has none, and whether
    sweep.budget holds: `sweep` refuses (exit 4) what this says is over or cannot be proven."""
    (tmp_path / "job.yaml").write_text(
        "name: j\ncode: .\nentrypoint: t.py\nresources: {instance_type: {sagemaker: ml.g4dn.xlarge, vertex: n1-highmem-2}}\n"
        "max_runtime: 30m\nsweep:\n  objective: {metric: loss, goal: minimize}\n  parameters: {lr: {type: float, min: 0.001, max: 0.1}}\n"
        "  max_trials: 4\n  budget: {max_usd: 1.0}\n")
    done = subprocess.run([sys.executable, "-m", "cloudtrain", "estimate", str(tmp_path / "job.yaml"), "--cloud", "sagemaker"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    row = next(o for o in CATALOG.offers if o.cloud == "sagemaker" and o.instance_type == "ml.g4dn.xlarge" and o.priced
               and o.region == "us-east-1")
    per_trial = row.usd_per_hour * 0.5
    shown = f"${per_trial:,.4f}".rstrip("0").rstrip(".")
    assert f"sweep on sagemaker ml.g4dn.xlarge: at most ${4 * per_trial:,.2f} (4 trials x {shown}); " \
           f"{'within' if 4 * per_trial <= 1.0 else 'over'} sweep.budget $1.00" in done.stderr, done.stderr
    vertex = subprocess.run([sys.executable, "-m", "cloudtrain", "estimate", str(tmp_path / "job.yaml"), "--cloud", "vertex"],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert ("sweep on vertex n1-highmem-2: no upper bound (4 trials, no sourced price); sweep.budget $1.00 cannot be proven "
            "there (sweep refuses it, exit 4)") in vertex.stderr, vertex.stderr
